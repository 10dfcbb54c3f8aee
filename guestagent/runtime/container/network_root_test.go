//go:build root

package container

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/vishvananda/netlink"

	"github.com/berth-dev/berth/guestagent/image/imagetest"
	"github.com/berth-dev/berth/guestagent/network"
	"github.com/berth-dev/berth/guestagent/network/nettest"
)

// netIsolated reports whether the test body should run here; outside the
// throwaway namespace it re-runs the test there and checks that the host's
// links are unchanged.
func netIsolated(t *testing.T) bool {
	t.Helper()
	var before []string
	return nettest.Isolated(t, 4*time.Minute, func() { before = linkNames(t) }, func() {
		if after := linkNames(t); !slices.Equal(before, after) {
			t.Errorf("host links changed: %v -> %v", before, after)
		}
	})
}

func linkNames(t *testing.T) []string {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		out = append(out, l.Attrs().Name)
	}
	slices.Sort(out)
	return out
}

const webImage = "berth.test/web:latest"

// loadWebImage loads imagetest's busybox (httpd, wget, the welcome page).
func loadWebImage(t *testing.T, e *rootEnv) {
	t.Helper()
	img, err := imagetest.Busybox()
	if err != nil {
		t.Skip(err)
	}
	tag, err := name.NewTag(webImage)
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if err := tarball.Write(tag, img, &archive); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Load(context.Background(), &archive, nil); err != nil {
		t.Fatal(err)
	}
}

func startContainer(t *testing.T, m *Manager, opts CreateOptions) *Container {
	t.Helper()
	ctx := rootCtx(t)
	c, err := m.Create(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	return must(m.Get(c.ID))
}

// waitListening waits until addr accepts TCP connections (dialled from
// the agent's namespace).
func waitListening(t *testing.T, addr netip.AddrPort) {
	t.Helper()
	waitFor(t, func() bool {
		c, err := net.DialTimeout("tcp4", addr.String(), 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func TestRootNetworking(t *testing.T) {
	if !netIsolated(t) {
		return
	}
	e := newRootEnv(t)
	loadWebImage(t, e)
	rc := filepath.Join(e.dir, "agent-resolv.conf")
	if err := os.WriteFile(rc, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := rootCtx(t)
	nm, err := network.Open(ctx, network.Config{Root: filepath.Join(e.dir, "network"), ResolvConfPath: rc,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer nm.Close()
	// A failed test's leftovers are removed after nm is closed, without
	// it: the namespace of this process takes the veths along.
	defer func() { e.opts.Network = nil }()
	e.opts.Network = nm
	m := e.open(t)

	// A server on the agent's side, for host.docker.internal.
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	hostSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from the agent\n") })}
	go hostSrv.Serve(l)
	defer hostSrv.Close()
	hostPort := l.Addr().(*net.TCPAddr).Port

	httpd := []string{"httpd", "-f", "-p", "80", "-h", "/var/www"}
	// Default bridge: a client reaches the server by address.
	srv := startContainer(t, m, CreateOptions{Name: "srv", Config: Config{Image: webImage, Cmd: httpd}})
	ep := srv.Networks["bridge"].Endpoint
	if !netip.MustParsePrefix(network.DefaultSubnet).Contains(ep.IP) || ep.MAC == "" || srv.NetNSPath == "" {
		t.Fatalf("bridge endpoint %+v", ep)
	}
	waitListening(t, netip.AddrPortFrom(ep.IP, 80))
	cli, res := run(t, m, CreateOptions{Config: Config{Image: webImage, Cmd: []string{"wget", "-qO-", "http://" + ep.IP.String() + "/"}}})
	if out := logText(t, m, cli.ID); res.ExitCode != 0 || out != imagetest.WelcomePage {
		t.Fatalf("wget on the default bridge: exit %d, %q", res.ExitCode, out)
	}
	hosts := string(must(os.ReadFile(srv.HostsPath)))
	if !strings.Contains(hosts, ep.IP.String()+"\t"+srv.Config.Hostname+"\n") || !strings.Contains(hosts, network.HostGatewayName) {
		t.Fatalf("hosts:\n%s", hosts)
	}

	// A user-defined network resolves containers by name, and every
	// container reaches the agent as host.docker.internal.
	if _, err := nm.Create(ctx, "mynet", network.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	web := startContainer(t, m, CreateOptions{Name: "web", Config: Config{Image: webImage, Cmd: httpd}, HostConfig: HostConfig{NetworkMode: "mynet"}})
	waitListening(t, netip.AddrPortFrom(web.Networks["mynet"].Endpoint.IP, 80))
	script := fmt.Sprintf("wget -qO- http://web/ && wget -qO- http://host.docker.internal:%d/", hostPort)
	cli2, res := run(t, m, CreateOptions{Config: Config{Image: webImage, Cmd: []string{"sh", "-c", script}}, HostConfig: HostConfig{NetworkMode: "mynet"}})
	if out := logText(t, m, cli2.ID); res.ExitCode != 0 || out != imagetest.WelcomePage+"hello from the agent\n" {
		t.Fatalf("wget by name on a user-defined network: exit %d, %q", res.ExitCode, out)
	}

	// --network none: loopback only.
	none, res := run(t, m, CreateOptions{Config: Config{Image: webImage, Cmd: []string{"sh", "-c", "ls /sys/class/net"}}, HostConfig: HostConfig{NetworkMode: "none"}})
	if out := logText(t, m, none.ID); res.ExitCode != 0 || out != "lo\n" {
		t.Fatalf("none: exit %d, %q", res.ExitCode, out)
	}

	// Stop and start keep the address.
	grace := time.Second
	if err := m.Stop(ctx, srv.ID, &grace); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, srv.ID); err != nil {
		t.Fatal(err)
	}
	if g := must(m.Get(srv.ID)); g.Networks["bridge"].Endpoint.IP != ep.IP {
		t.Fatalf("address changed across restart: %v -> %v", ep.IP, g.Networks["bridge"].Endpoint.IP)
	}
	waitListening(t, netip.AddrPortFrom(ep.IP, 80))

	// An agent restart (new managers on the same roots) keeps the running
	// container's endpoint.
	m.Close()
	if err := nm.Close(); err != nil {
		t.Fatal(err)
	}
	nm, err = network.Open(ctx, network.Config{Root: filepath.Join(e.dir, "network"), ResolvConfPath: rc,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer nm.Close()
	e.opts.Network = nm
	m = e.open(t)
	if eps := nm.Endpoints(srv.ID); len(eps) != 1 || eps[0].IP != ep.IP {
		t.Fatalf("endpoints after agent restart: %+v", eps)
	}
	waitListening(t, netip.AddrPortFrom(ep.IP, 80))

	// Removal leaves no veth, namespace or mount behind.
	e.removeAll(t, m)
	for _, n := range linkNames(t) {
		if strings.HasPrefix(n, "veth") {
			t.Errorf("veth %s left behind", n)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(e.opts.RunRoot, "netns")); len(ents) != 0 {
		t.Errorf("netns files left behind: %v", ents)
	}
	if mi := string(must(os.ReadFile("/proc/self/mountinfo"))); strings.Contains(mi, filepath.Join(e.opts.RunRoot, "netns")) {
		t.Errorf("netns mounts left behind:\n%s", mi)
	}
	for _, n := range []string{"bridge", "mynet"} {
		if got := must(nm.Inspect(n)).Endpoints; len(got) != 0 {
			t.Errorf("endpoints left on %s: %+v", n, got)
		}
	}
	if err := nm.Remove(ctx, "mynet"); err != nil {
		t.Errorf("remove mynet: %v", err)
	}
}
