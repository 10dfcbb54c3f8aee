package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/guestagent/network"
)

// fakeNet is a network manager that knows "bridge" (172.17.0.0/16) and
// "mynet" (172.18.0.0/16) and records every call.
type fakeNet struct {
	mu        sync.Mutex
	eps       []network.Endpoint
	last      map[string]byte
	attaches  []network.AttachRequest // attaches that made an endpoint
	detachAll []string
	failOn    string // a network whose attach fails
}

var fakeSubnets = map[string]netip.Prefix{
	"bridge": netip.MustParsePrefix("172.17.0.0/16"),
	"mynet":  netip.MustParsePrefix("172.18.0.0/16"),
}

func (f *fakeNet) AttachWith(ctx context.Context, req network.AttachRequest) (network.Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch req.Network {
	case network.HostNetwork:
		return network.Endpoint{ContainerID: req.ContainerID, Network: "host", NetworkID: "hostid"}, nil
	case network.NoneNetwork:
		if req.NetNSPath == "" {
			return network.Endpoint{}, errors.New("none without netns")
		}
		return network.Endpoint{ContainerID: req.ContainerID, Network: "none", NetworkID: "noneid", NetNSPath: req.NetNSPath}, nil
	case f.failOn:
		return network.Endpoint{}, fmt.Errorf("attach to %s: %w", req.Network, network.ErrExhausted)
	}
	name := req.Network
	if name == "mynetid" {
		name = "mynet"
	}
	sub, ok := fakeSubnets[name]
	if !ok {
		return network.Endpoint{}, fmt.Errorf("network %s: %w", req.Network, network.ErrNotFound)
	}
	if _, err := os.Stat(req.NetNSPath); err != nil {
		return network.Endpoint{}, fmt.Errorf("netns: %w", err)
	}
	hasDefault := false
	for _, e := range f.eps {
		if e.ContainerID == req.ContainerID {
			if e.Network == name {
				return e, nil
			}
			hasDefault = hasDefault || e.DefaultRoute
		}
	}
	if f.last == nil {
		f.last = map[string]byte{}
	}
	f.last[name]++
	ip := sub.Addr().As4()
	ip[3] = 1 + f.last[name]
	ep := network.Endpoint{
		ContainerID: req.ContainerID, ContainerName: req.Name, Network: name, NetworkID: name + "id",
		Aliases: req.Aliases, NetNSPath: req.NetNSPath, IP: netip.AddrFrom4(ip), Subnet: sub,
		Gateway: sub.Addr().Next(), MAC: "02:42:ac:11:00:02", DefaultRoute: !hasDefault,
	}
	f.eps = append(f.eps, ep)
	f.attaches = append(f.attaches, req)
	return ep, nil
}

func (f *fakeNet) Detach(ctx context.Context, id, net string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, e := range f.eps {
		if e.ContainerID == id && (e.Network == net || e.NetworkID == net) {
			f.eps = slices.Delete(f.eps, i, i+1)
			return nil
		}
	}
	return network.ErrNotFound
}

func (f *fakeNet) DetachAll(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.detachAll = append(f.detachAll, id)
	f.eps = slices.DeleteFunc(f.eps, func(e network.Endpoint) bool { return e.ContainerID == id })
	return nil
}

func (f *fakeNet) HostGateway() netip.Addr { return netip.MustParseAddr("172.17.0.1") }

func (f *fakeNet) ResolvConf(net string) network.ResolvConf {
	switch net {
	case "bridge":
		return network.ResolvConf{Nameservers: []netip.Addr{netip.MustParseAddr("10.0.0.53")}}
	case "none":
		return network.ResolvConf{}
	}
	return network.ResolvConf{Nameservers: []netip.Addr{fakeSubnets["mynet"].Addr().Next()}, Options: []string{"ndots:0"}}
}

func (f *fakeNet) endpoints(id string) []network.Endpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []network.Endpoint
	for _, e := range f.eps {
		if e.ContainerID == id {
			out = append(out, e)
		}
	}
	return out
}

// fakeNetNS makes plain files instead of namespaces.
var fakeNetNS = netnsOps{
	create: func(p string) error {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444)
		if err != nil {
			return err
		}
		return f.Close()
	},
	remove: func(p string) error {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	},
	alive: func(p string) bool { _, err := os.Stat(p); return err == nil },
}

func (e *env) openNet(t *testing.T, fn *fakeNet) *Manager {
	t.Helper()
	m, err := open(Options{Root: filepath.Join(e.root, "containers"), RunRoot: filepath.Join(e.root, "run"), Network: fn},
		deps{images: e.images, mounter: e.mounter, launcher: e.launcher, netns: fakeNetNS})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// specNetNS returns the network namespace entry of a container's bundle.
func specNetNS(t *testing.T, e *env, id string) (specs.LinuxNamespace, bool) {
	t.Helper()
	var spec specs.Spec
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(e.root, "containers", id, "bundle", "config.json"))), &spec); err != nil {
		t.Fatal(err)
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			return ns, true
		}
	}
	return specs.LinuxNamespace{}, false
}

func TestNetworkAttachOnCreateKeepsIPDetachesOnRemove(t *testing.T) {
	e := newEnv(t)
	fn := &fakeNet{}
	m := e.openNet(t, fn)
	defer cleanup(t, m)
	ctx := testCtx(t)
	c, err := m.Create(ctx, CreateOptions{Name: "web", Config: Config{Image: "test", Cmd: []string{"sleep", "100"}}})
	if err != nil {
		t.Fatal(err)
	}
	wantNS := filepath.Join(e.root, "run", "netns", c.ID)
	if c.NetNSPath != wantNS {
		t.Fatalf("netns %q, want %q", c.NetNSPath, wantNS)
	}
	if _, err := os.Stat(wantNS); err != nil {
		t.Fatal(err)
	}
	if ns, ok := specNetNS(t, e, c.ID); !ok || ns.Path != wantNS {
		t.Fatalf("spec netns %+v", ns)
	}
	a := c.Networks["bridge"]
	if a == nil || a.Endpoint.IP != netip.MustParseAddr("172.17.0.2") || !a.Endpoint.DefaultRoute {
		t.Fatalf("networks %+v", c.Networks)
	}
	if len(fn.attaches) != 1 || fn.attaches[0].Name != "web" || fn.attaches[0].NetNSPath != wantNS || len(fn.attaches[0].Aliases) != 0 {
		t.Fatalf("attaches %+v", fn.attaches)
	}
	hosts := readFile(t, c.HostsPath)
	for _, want := range []string{"127.0.0.1\tlocalhost\n", "172.17.0.2\t" + c.ID[:12] + "\n", "172.17.0.1\thost.docker.internal\n"} {
		if !strings.Contains(hosts, want) {
			t.Errorf("hosts lacks %q:\n%s", want, hosts)
		}
	}
	if r := readFile(t, c.ResolvConfPath); !strings.Contains(r, "nameserver 10.0.0.53\n") {
		t.Errorf("resolv.conf:\n%s", r)
	}
	if h := readFile(t, c.HostnamePath); h != c.ID[:12]+"\n" {
		t.Errorf("hostname %q", h)
	}
	// Stop and start keep the endpoint (no new attach).
	for i := 0; i < 2; i++ {
		if err := m.Start(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if err := m.Stop(ctx, c.ID, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(fn.attaches) != 1 {
		t.Fatalf("%d attaches after restarts", len(fn.attaches))
	}
	if g, _ := m.Get(c.ID); g.Networks["bridge"].Endpoint.IP != a.Endpoint.IP {
		t.Fatalf("IP changed: %+v", g.Networks["bridge"])
	}
	if err := m.Remove(ctx, c.ID, true, false); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(fn.detachAll, c.ID) || len(fn.endpoints(c.ID)) != 0 {
		t.Fatalf("not detached: %v %v", fn.detachAll, fn.endpoints(c.ID))
	}
	if _, err := os.Stat(wantNS); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("netns left behind: %v", err)
	}
}

func TestNetworkCreateFailureCleansUp(t *testing.T) {
	e := newEnv(t)
	fn := &fakeNet{failOn: "broken"}
	m := e.openNet(t, fn)
	defer cleanup(t, m)
	ctx := testCtx(t)
	_, err := m.Create(ctx, CreateOptions{Name: "x", Config: Config{Image: "test"},
		Networks: map[string]EndpointConfig{"broken": {}}})
	if !errors.Is(err, network.ErrExhausted) {
		t.Fatalf("create: %v", err)
	}
	if len(fn.eps) != 0 || len(fn.detachAll) == 0 {
		t.Fatalf("endpoints %+v, detachAll %v", fn.eps, fn.detachAll)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.root, "run", "netns")); len(ents) != 0 {
		t.Fatalf("netns left: %v", ents)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.root, "containers")); len(ents) != 0 {
		t.Fatalf("container dirs left: %v", ents)
	}
	if e.mounter.count() != 0 {
		t.Fatal("rootfs left mounted")
	}
	// An unknown network is a not-found error, and the name is free again.
	if _, err := m.Create(ctx, CreateOptions{Name: "x", Config: Config{Image: "test"}, HostConfig: HostConfig{NetworkMode: "nope"}}); !errors.Is(err, network.ErrNotFound) {
		t.Fatalf("unknown network: %v", err)
	}
	create(t, m, "x", "true")
}

func TestNetworkUserDefinedNoneHostAndJoin(t *testing.T) {
	e := newEnv(t)
	fn := &fakeNet{}
	m := e.openNet(t, fn)
	defer cleanup(t, m)
	ctx := testCtx(t)
	web, err := m.Create(ctx, CreateOptions{Name: "web", Config: Config{Image: "test"},
		HostConfig: HostConfig{NetworkMode: "mynetid"},
		Networks:   map[string]EndpointConfig{"mynetid": {Aliases: []string{"www"}}, "bridge": {}}})
	if err != nil {
		t.Fatal(err)
	}
	if web.HostConfig.NetworkMode != "mynet" || web.Networks["mynet"] == nil || web.Networks["bridge"] == nil {
		t.Fatalf("networks %+v mode %q", web.Networks, web.HostConfig.NetworkMode)
	}
	if !web.Networks["mynet"].Endpoint.DefaultRoute || web.Networks["bridge"].Endpoint.DefaultRoute {
		t.Fatal("the primary network must carry the default route")
	}
	if got := fn.attaches[0].Aliases; !slices.Equal(got, []string{"www", web.ID[:12]}) {
		t.Fatalf("aliases %v", got)
	}
	if r := readFile(t, web.ResolvConfPath); !strings.Contains(r, "nameserver 172.18.0.1\n") || !strings.Contains(r, "ndots:0") {
		t.Fatalf("resolv.conf of a user-defined network:\n%s", r)
	}
	if h := readFile(t, web.HostsPath); !strings.Contains(h, "172.18.0.2\t"+web.ID[:12]+"\n") {
		t.Fatalf("hosts:\n%s", h)
	}

	none, err := m.Create(ctx, CreateOptions{Config: Config{Image: "test"}, HostConfig: HostConfig{NetworkMode: "none"}})
	if err != nil {
		t.Fatal(err)
	}
	if none.NetNSPath == "" || none.Networks["none"] == nil {
		t.Fatalf("none: %+v", none)
	}
	if h := readFile(t, none.HostsPath); strings.Contains(h, none.ID[:12]) || strings.Contains(h, "host.docker.internal") {
		t.Fatalf("none hosts:\n%s", h)
	}

	host, err := m.Create(ctx, CreateOptions{Config: Config{Image: "test"}, HostConfig: HostConfig{NetworkMode: "host"}})
	if err != nil {
		t.Fatal(err)
	}
	if ns, ok := specNetNS(t, e, host.ID); ok || host.NetNSPath != "" || host.Networks["host"] == nil {
		t.Fatalf("host: netns %+v %q %+v", ns, host.NetNSPath, host.Networks)
	}

	side, err := m.Create(ctx, CreateOptions{Config: Config{Image: "test"}, HostConfig: HostConfig{NetworkMode: "container:web"}})
	if err != nil {
		t.Fatal(err)
	}
	if ns, _ := specNetNS(t, e, side.ID); ns.Path != web.NetNSPath || side.NetNSPath != "" || side.HostConfig.NetworkMode != "container:"+web.ID {
		t.Fatalf("joined: %+v %+v", ns, side)
	}
	if readFile(t, side.HostsPath) != readFile(t, web.HostsPath) {
		t.Fatal("joined container's hosts differ")
	}
	if _, err := m.Create(ctx, CreateOptions{Config: Config{Image: "test"}, HostConfig: HostConfig{NetworkMode: "container:" + side.ID}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("joining a joined container: %v", err)
	}
	// Removing the joined container leaves the owner's namespace alone.
	if err := m.Remove(ctx, side.ID, true, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(web.NetNSPath); err != nil || len(fn.endpoints(web.ID)) != 2 {
		t.Fatalf("owner's network after removing the joined container: %v %+v", err, fn.endpoints(web.ID))
	}
}

func TestNetworkRecreatedAfterReboot(t *testing.T) {
	e := newEnv(t)
	fn := &fakeNet{}
	m := e.openNet(t, fn)
	ctx := testCtx(t)
	c, err := m.Create(ctx, CreateOptions{Name: "a", Config: Config{Image: "test", Cmd: []string{"sleep", "100"}},
		HostConfig: HostConfig{NetworkMode: "mynet"}})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	// A reboot: the namespace is gone and the network manager dropped the
	// endpoint; another container took the address meanwhile.
	if err := os.Remove(c.NetNSPath); err != nil {
		t.Fatal(err)
	}
	fn.eps = nil
	fn.last = nil
	ns := filepath.Join(e.root, "other")
	if err := fakeNetNS.create(ns); err != nil {
		t.Fatal(err)
	}
	if _, err := fn.AttachWith(ctx, network.AttachRequest{ContainerID: "other", NetNSPath: ns, Network: "mynet"}); err != nil {
		t.Fatal(err)
	}

	m2 := e.openNet(t, fn)
	if err := m2.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	g, _ := m2.Get(c.ID)
	ip := g.Networks["mynet"].Endpoint.IP
	if _, err := os.Stat(c.NetNSPath); err != nil || ip != netip.MustParseAddr("172.18.0.3") {
		t.Fatalf("after reboot: %v %v", err, ip)
	}
	if h := readFile(t, g.HostsPath); !strings.Contains(h, "172.18.0.3\t") {
		t.Fatalf("hosts not rewritten:\n%s", h)
	}
	m2.Close()
	m3 := e.openNet(t, fn)
	defer cleanup(t, m3)
	if g, _ := m3.Get(c.ID); g.Networks["mynet"].Endpoint.IP != ip {
		t.Fatal("new endpoint not persisted")
	}
}

func TestNetworkConnectDisconnect(t *testing.T) {
	e := newEnv(t)
	fn := &fakeNet{}
	m := e.openNet(t, fn)
	defer cleanup(t, m)
	ctx := testCtx(t)
	c := create(t, m, "c", "sleep", "100")
	if err := m.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	got, err := m.ConnectNetwork(ctx, "c", "mynet", EndpointConfig{Aliases: []string{"db"}})
	if err != nil {
		t.Fatal(err)
	}
	if a := got.Networks["mynet"]; a == nil || a.Endpoint.IP != netip.MustParseAddr("172.18.0.2") || a.Endpoint.DefaultRoute {
		t.Fatalf("connected: %+v", got.Networks)
	}
	if _, err := m.ConnectNetwork(ctx, "c", "mynet", EndpointConfig{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("connect twice: %v", err)
	}
	if _, err := m.ConnectNetwork(ctx, "c", "nope", EndpointConfig{}); !errors.Is(err, network.ErrNotFound) {
		t.Fatalf("connect to unknown: %v", err)
	}
	if _, err := m.ConnectNetwork(ctx, "c", "host", EndpointConfig{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("connect to host: %v", err)
	}
	if g, _ := m.Get("c"); len(g.Networks) != 2 {
		t.Fatalf("networks after failed connects: %+v", g.Networks)
	}
	if err := m.DisconnectNetwork(ctx, "c", "mynetid", false); err != nil {
		t.Fatal(err)
	}
	if err := m.DisconnectNetwork(ctx, "c", "mynet", false); !errors.Is(err, ErrInvalid) {
		t.Fatalf("disconnect twice: %v", err)
	}
	if g, _ := m.Get("c"); len(g.Networks) != 1 || len(fn.endpoints(c.ID)) != 1 {
		t.Fatalf("after disconnect: %+v %+v", g.Networks, fn.endpoints(c.ID))
	}
	hn, err := m.Create(ctx, CreateOptions{Config: Config{Image: "test"}, HostConfig: HostConfig{NetworkMode: "host"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.ConnectNetwork(ctx, hn.ID, "mynet", EndpointConfig{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("connect a host-network container: %v", err)
	}
}

func TestNetworkWithoutManagerKeepsFreshNamespace(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	defer cleanup(t, m)
	c := create(t, m, "plain", "true")
	if ns, ok := specNetNS(t, e, c.ID); !ok || ns.Path != "" || c.NetNSPath != "" || len(c.Networks) != 0 {
		t.Fatalf("legacy: %+v %+v", ns, c)
	}
	ctx := testCtx(t)
	if _, err := m.Create(ctx, CreateOptions{Config: Config{Image: "test"}, HostConfig: HostConfig{NetworkMode: "mynet"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("user network without manager: %v", err)
	}
	if _, err := m.ConnectNetwork(ctx, c.ID, "mynet", EndpointConfig{}); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("connect without manager: %v", err)
	}
}

func TestPlanNetwork(t *testing.T) {
	for _, tc := range []struct {
		mode  string
		extra map[string]EndpointConfig
		kind  netKind
		bad   bool
	}{
		{mode: "", kind: netOwn},
		{mode: "default", extra: map[string]EndpointConfig{"default": {}}, kind: netOwn},
		{mode: "none", kind: netOwn},
		{mode: "host", kind: netHost},
		{mode: "container:abc", kind: netJoin},
		{mode: "container:", bad: true},
		{mode: "container:abc", extra: map[string]EndpointConfig{"mynet": {}}, bad: true},
		{mode: "host", extra: map[string]EndpointConfig{"mynet": {}}, bad: true},
		{mode: "mynet", extra: map[string]EndpointConfig{"none": {}}, bad: true},
		{mode: "bridge", extra: map[string]EndpointConfig{"bridge": {Aliases: []string{"x"}}}, bad: true},
		{mode: "mynet", extra: map[string]EndpointConfig{"other": {}}, kind: netOwn},
	} {
		p, err := planNetwork(tc.mode, tc.extra, true)
		if tc.bad != (err != nil) || (err == nil && p.kind != tc.kind) {
			t.Errorf("planNetwork(%q, %v) = %+v, %v", tc.mode, tc.extra, p, err)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("planNetwork(%q): %v is not ErrInvalid", tc.mode, err)
		}
	}
	if p, err := planNetwork("bridge", nil, false); err != nil || p.kind != netLegacy {
		t.Errorf("legacy bridge: %+v %v", p, err)
	}
	if _, err := planNetwork("container:x", nil, false); !errors.Is(err, ErrInvalid) {
		t.Errorf("legacy container mode: %v", err)
	}
}
