package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// fakeDataplane records what a Manager asks of the kernel.
type fakeDataplane struct {
	mu        sync.Mutex
	bridges   map[string]netip.Prefix
	links     map[string]attachPlan // host side veths
	alive     map[string]bool       // netns paths
	rules     []ruleSpec
	forward   bool
	loUp      []string
	agentNets []netip.Prefix
	failAt    string
}

func newFake() *fakeDataplane {
	return &fakeDataplane{bridges: map[string]netip.Prefix{}, links: map[string]attachPlan{}, alive: map[string]bool{}}
}

func (f *fakeDataplane) ensureBridge(name string, addr netip.Prefix, mtu int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAt == "bridge" {
		return errors.New("injected")
	}
	f.bridges[name] = addr
	return nil
}

func (f *fakeDataplane) deleteBridge(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.bridges, name)
	return nil
}

func (f *fakeDataplane) applyRules(r []ruleSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = r
	return nil
}

func (f *fakeDataplane) enableForwarding() error { f.forward = true; return nil }

func (f *fakeDataplane) routes() ([]netip.Prefix, error) { return f.agentNets, nil }

func (f *fakeDataplane) attach(p attachPlan) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAt == "attach" {
		return errors.New("injected")
	}
	if !f.alive[p.NetNSPath] {
		return fmt.Errorf("netns %s: %w", p.NetNSPath, os.ErrNotExist)
	}
	if _, ok := f.bridges[p.Bridge]; !ok {
		return fmt.Errorf("bridge %s missing", p.Bridge)
	}
	f.links[p.HostIf] = p
	return nil
}

func (f *fakeDataplane) attachNone(path string) error {
	f.loUp = append(f.loUp, path)
	return nil
}

func (f *fakeDataplane) detach(hostIf string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.links, hostIf)
	return nil
}

func (f *fakeDataplane) repairPort(name, bridge string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.links[name]
	if ok && p.Bridge != bridge {
		return false, fmt.Errorf("port %s on %s, want %s", name, p.Bridge, bridge)
	}
	return ok, nil
}

func (f *fakeDataplane) netnsAlive(path string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.alive[path]
}

func (f *fakeDataplane) listen(netip.AddrPort) (net.PacketConn, net.Listener, error) {
	return nil, nil, nil
}

func (f *fakeDataplane) close() {}

func (f *fakeDataplane) sweepPorts(bridges []string, keep map[string]bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, p := range f.links {
		if slices.Contains(bridges, p.Bridge) && !keep[name] {
			delete(f.links, name)
		}
	}
	return nil
}

func testConfig(t *testing.T, root string) Config {
	t.Helper()
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(rc, []byte("nameserver 127.0.0.53\nsearch corp.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return Config{Root: root, ResolvConfPath: rc}
}

func TestManagerLifecycle(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	fake := newFake()
	fake.agentNets = []netip.Prefix{netip.MustParsePrefix("172.18.0.0/16")} // the agent's own uplink
	m, err := open(ctx, testConfig(t, root), fake)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := fake.bridges["berth0"]; got.String() != "172.17.0.1/16" || !fake.forward {
		t.Fatalf("default bridge %v forward %v", got, fake.forward)
	}
	if m.HostGateway().String() != "172.17.0.1" {
		t.Fatalf("host gateway %v", m.HostGateway())
	}
	names := func() []string {
		var s []string
		for _, n := range m.List() {
			s = append(s, n.Name)
		}
		return s
	}
	if got := names(); !slices.Equal(got, []string{"bridge", "host", "none"}) {
		t.Fatalf("list %v", got)
	}

	// User-defined network: subnet skips the agent's route.
	app, err := m.Create(ctx, "app", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if app.Subnet.String() != "172.19.0.0/16" || app.Gateway.String() != "172.19.0.1" || app.Bridge != "br-"+app.ID[:12] {
		t.Fatalf("app %+v", app)
	}
	if _, err := m.Create(ctx, "app", CreateOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := m.Create(ctx, "other", CreateOptions{Subnet: netip.MustParsePrefix("172.19.3.0/24")}); !errors.Is(err, ErrOverlap) {
		t.Fatalf("overlap: %v", err)
	}
	for _, bad := range []string{"bridge", "host", "none"} {
		if _, err := m.Create(ctx, bad, CreateOptions{}); !errors.Is(err, ErrPredefined) {
			t.Fatalf("create %s: %v", bad, err)
		}
	}
	if _, err := m.Create(ctx, "-x", CreateOptions{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad name: %v", err)
	}
	if !slices.ContainsFunc(fake.rules, func(r ruleSpec) bool { return r.Verdict == "masquerade" && r.OIf == app.Bridge }) {
		t.Fatalf("no masquerade for %s in %v", app.Bridge, fake.rules)
	}

	fake.alive["/ns/a"], fake.alive["/ns/b"] = true, true
	a, err := m.Attach(ctx, "aaaaaaaaaaaaaaaa", "/web", "/ns/a", "bridge", nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.IP.String() != "172.17.0.2" || a.IfName != "eth0" || a.MAC != "02:42:ac:11:00:02" || !a.DefaultRoute || a.Gateway.String() != "172.17.0.1" {
		t.Fatalf("endpoint %+v", a)
	}
	again, err := m.Attach(ctx, "aaaaaaaaaaaaaaaa", "/web", "/ns/a", "bridge", nil)
	if err != nil || again.IP != a.IP {
		t.Fatalf("re-attach %+v %v", again, err)
	}
	a2, err := m.Attach(ctx, "aaaaaaaaaaaaaaaa", "web", "/ns/a", "app", []string{"frontend"})
	if err != nil {
		t.Fatal(err)
	}
	if a2.IfName != "eth1" || a2.DefaultRoute || a2.IP.String() != "172.19.0.2" {
		t.Fatalf("second endpoint %+v", a2)
	}
	b, err := m.Attach(ctx, "bbbbbbbbbbbbbbbb", "db", "/ns/b", app.ID[:5], []string{"pool"})
	if err != nil {
		t.Fatal(err)
	}
	if b.IP.String() != "172.19.0.3" || !b.DefaultRoute {
		t.Fatalf("b %+v", b)
	}
	if len(fake.links) != 3 {
		t.Fatalf("links %v", fake.links)
	}

	// Name resolution on the user-defined network only.
	for name, want := range map[string]string{
		"web": "172.19.0.2", "frontend": "172.19.0.2", "aaaaaaaaaaaa": "172.19.0.2", "db.app": "172.19.0.3",
		HostGatewayName: "172.17.0.1",
	} {
		if got := m.lookup(app.ID, name); len(got) != 1 || got[0].String() != want {
			t.Errorf("lookup %s: %v, want %s", name, got, want)
		}
	}
	if got := m.lookup(app.ID, "pool"); len(got) != 1 {
		t.Errorf("pool: %v", got)
	}
	fake.alive["/ns/p"] = true
	p, err := m.AttachWith(ctx, AttachRequest{ContainerID: "pppppppppppppppp", NetNSPath: "/ns/p", Network: "app", Aliases: []string{"pool"}, IP: netip.MustParseAddr("172.19.9.9")})
	if err != nil || p.IP.String() != "172.19.9.9" {
		t.Fatalf("fixed IP: %+v %v", p, err)
	}
	if got := m.lookup(app.ID, "pool"); len(got) != 2 {
		t.Errorf("shared alias pool: %v", got)
	}
	if _, err := m.AttachWith(ctx, AttachRequest{ContainerID: "qqqq", NetNSPath: "/ns/p", Network: "app", IP: netip.MustParseAddr("172.19.9.9")}); !errors.Is(err, ErrExists) {
		t.Fatalf("taken fixed IP: %v", err)
	}
	if _, err := m.AttachWith(ctx, AttachRequest{ContainerID: "qqqq", NetNSPath: "/ns/p", Network: "bridge", IP: netip.MustParseAddr("172.17.9.9")}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("fixed IP on the default bridge: %v", err)
	}
	if err := m.DetachAll(ctx, "pppppppppppppppp"); err != nil {
		t.Fatal(err)
	}
	def, _ := m.Inspect("bridge")
	if got := m.lookup(def.ID, "web"); got != nil {
		t.Error("container names resolve on the default bridge")
	}

	// resolv.conf contents.
	if rc := string(m.ResolvConf("app").Bytes()); rc != "# Generated by berth.\nnameserver 172.19.0.1\nsearch corp.example\noptions ndots:0\n" {
		t.Errorf("app resolv.conf %q", rc)
	}
	if rc := string(m.ResolvConf("bridge").Bytes()); rc != "# Generated by berth.\nnameserver 172.17.0.1\nsearch corp.example\n" {
		t.Errorf("bridge resolv.conf (loopback-only agent) %q", rc)
	}
	if rc := m.ResolvConf("none"); len(rc.Nameservers) != 0 {
		t.Errorf("none resolv.conf (loopback-only agent) %+v", rc)
	}
	if rc := m.ResolvConf("host"); rc.Nameservers[0].String() != "127.0.0.53" {
		t.Errorf("host resolv.conf %+v", rc)
	}

	if err := m.Remove(ctx, "app"); !errors.Is(err, ErrInUse) {
		t.Fatalf("remove in use: %v", err)
	}
	if err := m.Remove(ctx, "bridge"); !errors.Is(err, ErrPredefined) {
		t.Fatalf("remove bridge: %v", err)
	}
	in, err := m.Inspect("app")
	if err != nil || len(in.Endpoints) != 2 {
		t.Fatalf("inspect %+v %v", in, err)
	}

	// Restart: same addresses; the namespace of b is gone, so b is dropped,
	// and a's veth on app vanished, so it is re-attached.
	m.Close()
	fake.alive["/ns/b"] = false
	delete(fake.links, a2.HostIfName)
	fake.links["vethstale"] = attachPlan{HostIf: "vethstale", Bridge: "berth0"} // e.g. a crash between attach and save
	m, err = open(ctx, testConfig(t, root), fake)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	eps := m.Endpoints("aaaaaaaaaaaaaaaa")
	if len(eps) != 2 || eps[0].IP != a.IP || eps[1].IP != a2.IP {
		t.Fatalf("after restart %+v", eps)
	}
	if _, ok := fake.links[a2.HostIfName]; !ok {
		t.Fatal("vanished veth not re-attached")
	}
	if len(m.Endpoints("bbbbbbbbbbbbbbbb")) != 0 || fake.links[b.HostIfName].HostIf != "" {
		t.Fatal("stale endpoint kept")
	}
	if _, ok := fake.links["vethstale"]; ok {
		t.Fatal("unknown port on a berth bridge kept")
	}
	// Round-robin allocation state survived the restart: .3 was handed out last.
	fake.alive["/ns/c"] = true
	c, err := m.Attach(ctx, "cccccccccccccccc", "c", "/ns/c", "app", nil)
	if err != nil || c.IP.String() != "172.19.0.4" {
		t.Fatalf("c %+v %v", c, err)
	}

	if err := m.Detach(ctx, "cccccccccccccccc", "app"); err != nil {
		t.Fatal(err)
	}
	if err := m.Detach(ctx, "cccccccccccccccc", "app"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second detach: %v", err)
	}
	if err := m.DetachAll(ctx, "aaaaaaaaaaaaaaaa"); err != nil {
		t.Fatal(err)
	}
	if len(fake.links) != 0 {
		t.Fatalf("links left %v", fake.links)
	}
	if err := m.Remove(ctx, app.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := fake.bridges[app.Bridge]; ok {
		t.Fatal("bridge left")
	}
	if slices.ContainsFunc(fake.rules, func(r ruleSpec) bool { return r.IIf == app.Bridge || r.OIf == app.Bridge }) {
		t.Fatalf("rules left for %s: %v", app.Bridge, fake.rules)
	}
	if _, err := m.Inspect("app"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("inspect removed: %v", err)
	}
}

func TestManagerPseudoNetworks(t *testing.T) {
	ctx := context.Background()
	fake := newFake()
	m, err := open(ctx, testConfig(t, t.TempDir()), fake)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	e, err := m.Attach(ctx, "c1", "c1", "", "host", nil)
	if err != nil || e.IP.IsValid() || e.Network != "host" {
		t.Fatalf("host %+v %v", e, err)
	}
	e, err = m.Attach(ctx, "c2", "c2", "/ns/x", "none", nil)
	if err != nil || e.IP.IsValid() || !slices.Equal(fake.loUp, []string{"/ns/x"}) {
		t.Fatalf("none %+v %v %v", e, err, fake.loUp)
	}
	if err := m.Detach(ctx, "c2", "none"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(ctx, "c3", "c3", "/ns/y", "missing", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing network: %v", err)
	}
	h, err := m.Inspect("host")
	if err != nil || h.Driver != "host" || len(h.ID) != 64 {
		t.Fatalf("inspect host %+v %v", h, err)
	}
	if err := m.Remove(ctx, "none"); !errors.Is(err, ErrPredefined) {
		t.Fatalf("remove none: %v", err)
	}
	// A failed attach leaves nothing behind.
	fake.alive["/ns/z"] = true
	fake.failAt = "attach"
	if _, err := m.Attach(ctx, "c4", "c4", "/ns/z", "bridge", nil); err == nil {
		t.Fatal("attach succeeded")
	}
	if len(m.Endpoints("c4")) != 0 {
		t.Fatal("endpoint kept after failure")
	}
	// A failed create leaves no network.
	fake.failAt = "bridge"
	if _, err := m.Create(ctx, "broken", CreateOptions{}); err == nil {
		t.Fatal("create succeeded")
	}
	if _, err := m.Inspect("broken"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("broken network kept: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(ctx, "c5", "c5", "/ns/z", "bridge", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("attach after close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestManagerConfigErrors(t *testing.T) {
	if _, err := open(context.Background(), Config{}, newFake()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty root: %v", err)
	}
	cfg := testConfig(t, t.TempDir())
	cfg.DefaultSubnet = netip.MustParsePrefix("fd00::/64")
	if _, err := open(context.Background(), cfg, newFake()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("v6 default subnet: %v", err)
	}
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, stateFileName), []byte(`{"version":99}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := open(context.Background(), testConfig(t, root), newFake()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("future state: %v", err)
	}
}

func TestManagerResolvers(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t, t.TempDir())
	if err := os.WriteFile(cfg.ResolvConfPath, []byte("nameserver 127.0.0.53\nnameserver 10.0.0.2\noptions ndots:3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.HostGatewayIP = netip.MustParseAddr("192.0.2.1")
	m, err := open(ctx, cfg, newFake())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := string(m.ResolvConf("bridge").Bytes()); got != "# Generated by berth.\nnameserver 10.0.0.2\noptions ndots:3\n" {
		t.Errorf("bridge: %q", got)
	}
	if _, err := m.Create(ctx, "n", CreateOptions{Subnet: netip.MustParsePrefix("10.10.0.0/24"), Gateway: netip.MustParseAddr("10.10.0.254")}); err != nil {
		t.Fatal(err)
	}
	// The agent's ndots wins over dockerd's ndots:0.
	if got := string(m.ResolvConf("n").Bytes()); got != "# Generated by berth.\nnameserver 10.10.0.254\noptions ndots:3\n" {
		t.Errorf("user network: %q", got)
	}
	if got := m.upstreams; len(got) != 2 || got[0].String() != "127.0.0.53:53" {
		t.Errorf("upstreams %v", got)
	}
	if got := m.lookup("any", HostGatewayName); len(got) != 1 || got[0] != cfg.HostGatewayIP {
		t.Errorf("host gateway %v", got)
	}
	cfg2 := testConfig(t, t.TempDir())
	cfg2.DNS = []netip.Addr{netip.MustParseAddr("1.1.1.1")}
	m2, err := open(ctx, cfg2, newFake())
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if got := m2.ResolvConf("bridge").Nameservers; len(got) != 1 || got[0].String() != "1.1.1.1" {
		t.Errorf("configured DNS: %v", got)
	}
}
