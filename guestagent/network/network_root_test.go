//go:build root && linux

package network

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/guestagent/network/nettest"
)

// hostState is what must be the same on the host before and after a test.
type hostState struct {
	links     []string
	tables    []string
	ipForward string
}

func snapshotHost(t *testing.T) hostState {
	t.Helper()
	var s hostState
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatalf("host links: %v", err)
	}
	for _, l := range links {
		s.links = append(s.links, l.Attrs().Name)
	}
	slices.Sort(s.links)
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTables()
	if err != nil {
		t.Fatalf("host nftables: %v", err)
	}
	for _, tb := range tables {
		s.tables = append(s.tables, fmt.Sprintf("%d/%s", tb.Family, tb.Name))
	}
	slices.Sort(s.tables)
	fw, err := os.ReadFile(ipForwardPath)
	if err != nil {
		t.Fatal(err)
	}
	s.ipForward = strings.TrimSpace(string(fw))
	return s
}

// isolated reports whether the test body should run here. Outside the
// throwaway namespace it re-executes this one test under
// `unshare --net --mount`, checks that it passed and that the host's links,
// nftables tables and ip_forward are unchanged, and returns false.
func isolated(t *testing.T) bool {
	t.Helper()
	var before hostState
	return nettest.Isolated(t, 3*time.Minute, func() { before = snapshotHost(t) }, func() {
		after := snapshotHost(t)
		if !slices.Equal(before.links, after.links) {
			t.Errorf("host links changed: %v -> %v", before.links, after.links)
		}
		if !slices.Equal(before.tables, after.tables) {
			t.Errorf("host nftables tables changed: %v -> %v", before.tables, after.tables)
		}
		if slices.ContainsFunc(after.tables, func(s string) bool { return strings.HasSuffix(s, "/"+nftTable) }) {
			t.Errorf("host has a %s table", nftTable)
		}
		if before.ipForward != after.ipForward {
			t.Errorf("host ip_forward changed: %s -> %s", before.ipForward, after.ipForward)
		}
	})
}

// inNS runs fn inside the namespace at path.
func inNS(path string, fn func() error) error { return doInNetNS(path, fn) }

type testEnv struct {
	t    *testing.T
	dir  string
	root string
	cfg  Config
}

func newEnv(t *testing.T) *testEnv {
	dir := t.TempDir()
	rc := filepath.Join(dir, "agent-resolv.conf")
	if err := os.WriteFile(rc, []byte("nameserver 127.0.0.1\nsearch test.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, dir: dir, root: filepath.Join(dir, "state")}
	e.cfg = Config{
		Root:           e.root,
		ResolvConfPath: rc,
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	return e
}

func (e *testEnv) open() *Manager {
	e.t.Helper()
	m, err := Open(context.Background(), e.cfg)
	if err != nil {
		e.t.Fatalf("open: %v", err)
	}
	e.t.Cleanup(func() { _ = m.Close() })
	return m
}

func (e *testEnv) netns(name string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := NewNetNS(p); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if err := DeleteNetNS(p); err != nil {
			e.t.Error(err)
		}
	})
	return p
}

// serveEcho listens on addr inside the namespace at path and echoes one line
// per connection.
func serveEcho(t *testing.T, path string, addr netip.AddrPort) {
	t.Helper()
	var l net.Listener
	if err := inNS(path, func() (err error) {
		l, err = net.Listen("tcp4", addr.String())
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", path, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				_, _ = io.WriteString(c, "echo "+line)
			}()
		}
	}()
}

// echo dials addr (from the namespace at path, or the agent's when "") and
// returns the reply to "hi".
func echo(path string, addr netip.AddrPort, timeout time.Duration) (string, error) {
	var reply string
	do := func() error {
		c, err := net.DialTimeout("tcp4", addr.String(), timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		if _, err := io.WriteString(c, "hi\n"); err != nil {
			return err
		}
		reply, err = bufio.NewReader(c).ReadString('\n')
		return err
	}
	if path == "" {
		return reply, do()
	}
	return reply, inNS(path, do)
}

// nftRules lists the rules of one of berth's chains.
func nftRules(t *testing.T, chain string) []*nftables.Rule {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tb, err := c.ListTableOfFamily(nftTable, nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatalf("table %s: %v", nftTable, err)
	}
	ch, err := c.ListChain(tb, chain)
	if err != nil {
		t.Fatalf("chain %s: %v", chain, err)
	}
	rules, err := c.GetRules(tb, ch)
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

// hasMasquerade reports whether postrouting masquerades subnet.
func hasMasquerade(t *testing.T, subnet netip.Prefix) bool {
	for _, r := range nftRules(t, nftPostrouting) {
		src, masq := false, false
		for _, e := range r.Exprs {
			switch x := e.(type) {
			case *expr.Cmp:
				if slices.Equal(x.Data, subnet.Addr().AsSlice()) {
					src = true
				}
			case *expr.Masq:
				masq = true
			}
		}
		if src && masq {
			return true
		}
	}
	return false
}

func linkExists(t *testing.T, name string) bool {
	_, err := netlink.LinkByName(name)
	if err != nil && !isNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

func TestRootDefaultBridge(t *testing.T) {
	if !isolated(t) {
		return
	}
	ctx := context.Background()
	env := newEnv(t)
	m := env.open()
	nsA, nsB := env.netns("a"), env.netns("b")
	a, err := m.Attach(ctx, "aaaaaaaaaaaaaaaaaaaa", "a", nsA, DefaultNetwork, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Attach(ctx, "bbbbbbbbbbbbbbbbbbbb", "b", nsB, DefaultNetwork, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.IP.String() != "172.17.0.2" || b.IP.String() != "172.17.0.3" || a.IfName != "eth0" {
		t.Fatalf("endpoints %+v %+v", a, b)
	}

	// The container side: eth0 with address, MAC and default route; lo up.
	h, err := netns.GetFromPath(nsA)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := netlink.NewHandleAt(h)
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	eth0, err := ch.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if eth0.Attrs().HardwareAddr.String() != "02:42:ac:11:00:02" || eth0.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("eth0 %+v", eth0.Attrs())
	}
	addrs, _ := ch.AddrList(eth0, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IPNet.String() != "172.17.0.2/16" {
		t.Fatalf("eth0 addresses %v", addrs)
	}
	routes, _ := ch.RouteList(eth0, netlink.FAMILY_V4)
	if !slices.ContainsFunc(routes, func(r netlink.Route) bool {
		return (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw.String() == "172.17.0.1"
	}) {
		t.Fatalf("no default route via 172.17.0.1: %v", routes)
	}
	lo, _ := ch.LinkByName("lo")
	if lo == nil || lo.Attrs().Flags&net.FlagUp == 0 {
		t.Fatal("lo not up in the container")
	}

	// TCP from container a to container b, and from the agent to b (the
	// path port forwarding takes).
	serveEcho(t, nsB, netip.AddrPortFrom(b.IP, 8080))
	if got, err := echo(nsA, netip.AddrPortFrom(b.IP, 8080), 5*time.Second); err != nil || got != "echo hi\n" {
		t.Fatalf("a -> b: %q %v", got, err)
	}
	if got, err := echo("", netip.AddrPortFrom(b.IP, 8080), 5*time.Second); err != nil || got != "echo hi\n" {
		t.Fatalf("agent -> b: %q %v", got, err)
	}

	// NAT and forwarding state.
	if !hasMasquerade(t, netip.MustParsePrefix("172.17.0.0/16")) {
		t.Fatal("no masquerade rule for 172.17.0.0/16")
	}
	if len(nftRules(t, nftForward)) == 0 {
		t.Fatal("empty forward chain")
	}
	if fw, _ := os.ReadFile(ipForwardPath); strings.TrimSpace(string(fw)) != "1" {
		t.Fatalf("ip_forward %q", fw)
	}

	// Detach removes both veth ends.
	if err := m.Detach(ctx, "aaaaaaaaaaaaaaaaaaaa", DefaultNetwork); err != nil {
		t.Fatal(err)
	}
	if linkExists(t, a.HostIfName) {
		t.Fatal("host veth left after detach")
	}
	if _, err := ch.LinkByName("eth0"); err == nil {
		t.Fatal("eth0 left in the container after detach")
	}
	if err := m.DetachAll(ctx, "bbbbbbbbbbbbbbbbbbbb"); err != nil {
		t.Fatal(err)
	}
	if linkExists(t, b.HostIfName) {
		t.Fatal("host veth of b left")
	}

	// --network none: loopback only.
	nsN := env.netns("n")
	if _, err := m.Attach(ctx, "nnnn", "n", nsN, NoneNetwork, nil); err != nil {
		t.Fatal(err)
	}
	if err := inNS(nsN, func() error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		if len(links) != 1 || links[0].Attrs().Name != "lo" || links[0].Attrs().Flags&net.FlagUp == 0 {
			return fmt.Errorf("links %v", links)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// dnsQueryFrom asks server from inside the namespace at path.
func dnsQueryFrom(t *testing.T, path string, server netip.AddrPort, tcp bool, name string) (dnsmessage.RCode, []netip.Addr) {
	t.Helper()
	var resp []byte
	q := buildQuery(t, 0x1234, name, dnsmessage.TypeA)
	if err := inNS(path, func() (err error) {
		resp, err = exchange(server, q, tcp, 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("query %s from %s: %v", name, path, err)
	}
	return parseAnswer(t, resp, 0x1234)
}

func TestRootUserNetworkDNS(t *testing.T) {
	if !isolated(t) {
		return
	}
	ctx := context.Background()
	env := newEnv(t)
	// The agent's upstream resolver, on the agent's loopback (as with a
	// local caching resolver): containers reach it through the gateway.
	up := &dnsServer{
		resolve: func(name string) []netip.Addr {
			if name == "up.example" {
				return []netip.Addr{netip.MustParseAddr("203.0.113.7")}
			}
			return nil
		},
		upstreams: func() []netip.AddrPort { return nil },
		log:       slog.New(slog.DiscardHandler),
	}
	udp, err := net.ListenPacket("udp4", "127.0.0.1:53")
	if err != nil {
		t.Fatal(err)
	}
	tcpL, err := net.Listen("tcp4", "127.0.0.1:53")
	if err != nil {
		t.Fatal(err)
	}
	up.serve(udp, tcpL)
	defer up.close()

	m := env.open()
	app, err := m.Create(ctx, "app", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if app.Subnet.String() != "172.18.0.0/16" {
		t.Fatalf("app subnet %s", app.Subnet)
	}
	nsW, nsD, nsX := env.netns("web"), env.netns("db"), env.netns("x")
	w, err := m.Attach(ctx, "wwwwwwwwwwwwwwww", "/web", nsW, "app", []string{"frontend"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(ctx, "dddddddddddddddd", "db", nsD, "app", nil); err != nil {
		t.Fatal(err)
	}
	x, err := m.Attach(ctx, "xxxxxxxxxxxxxxxx", "x", nsX, DefaultNetwork, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := m.ResolvConf("app")
	if len(rc.Nameservers) != 1 || rc.Nameservers[0] != app.Gateway {
		t.Fatalf("resolv.conf for app: %+v", rc)
	}
	server := netip.AddrPortFrom(rc.Nameservers[0], 53)
	for _, tcp := range []bool{false, true} {
		for _, name := range []string{"web.", "frontend.", "WEB.app."} {
			code, addrs := dnsQueryFrom(t, nsD, server, tcp, name)
			if code != dnsmessage.RCodeSuccess || len(addrs) != 1 || addrs[0] != w.IP {
				t.Fatalf("tcp=%v %s from db: %v %v", tcp, name, code, addrs)
			}
		}
		code, addrs := dnsQueryFrom(t, nsD, server, tcp, "up.example.")
		if code != dnsmessage.RCodeSuccess || len(addrs) != 1 || addrs[0].String() != "203.0.113.7" {
			t.Fatalf("tcp=%v forwarded from db: %v %v", tcp, code, addrs)
		}
		code, addrs = dnsQueryFrom(t, nsD, server, tcp, HostGatewayName+".")
		if code != dnsmessage.RCodeSuccess || len(addrs) != 1 || addrs[0].String() != "172.17.0.1" {
			t.Fatalf("tcp=%v host.docker.internal: %v %v", tcp, code, addrs)
		}
	}
	// The default bridge's forwarder does not know container names.
	xrc := m.ResolvConf(DefaultNetwork)
	if len(xrc.Nameservers) != 1 || xrc.Nameservers[0].String() != "172.17.0.1" {
		t.Fatalf("bridge resolv.conf with a loopback-only agent: %+v", xrc)
	}
	code, addrs := dnsQueryFrom(t, nsX, netip.AddrPortFrom(xrc.Nameservers[0], 53), false, "web.")
	if code != dnsmessage.RCodeServerFailure || len(addrs) != 0 {
		t.Fatalf("web resolved on the default bridge: %v %v", code, addrs)
	}

	// Same network: reachable. Another network: isolated by the forward chain.
	serveEcho(t, nsW, netip.AddrPortFrom(w.IP, 80))
	if got, err := echo(nsD, netip.AddrPortFrom(w.IP, 80), 5*time.Second); err != nil || got != "echo hi\n" {
		t.Fatalf("db -> web: %q %v", got, err)
	}
	if _, err := echo(nsX, netip.AddrPortFrom(w.IP, 80), 700*time.Millisecond); err == nil {
		t.Fatal("a container on the default bridge reached one on app")
	}
	if !hasMasquerade(t, app.Subnet) {
		t.Fatal("no masquerade for app")
	}

	if err := m.Remove(ctx, "app"); !errors.Is(err, ErrInUse) {
		t.Fatalf("remove in use: %v", err)
	}
	for _, id := range []string{"wwwwwwwwwwwwwwww", "dddddddddddddddd", "xxxxxxxxxxxxxxxx"} {
		if err := m.DetachAll(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Remove(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if linkExists(t, app.Bridge) || linkExists(t, w.HostIfName) || linkExists(t, x.HostIfName) {
		t.Fatal("links left after remove")
	}
	if hasMasquerade(t, app.Subnet) {
		t.Fatal("masquerade for app left after remove")
	}
	for _, r := range nftRules(t, nftForward) {
		for _, e := range r.Exprs {
			if c, ok := e.(*expr.Cmp); ok && strings.HasPrefix(string(c.Data), app.Bridge) {
				t.Fatalf("forward rule for %s left", app.Bridge)
			}
		}
	}
	// The DNS server on the removed gateway is gone.
	if c, err := net.DialTimeout("tcp4", server.String(), time.Second); err == nil {
		c.Close()
		t.Fatal("dns still listening after remove")
	}
}

func TestRootRestartReconciles(t *testing.T) {
	if !isolated(t) {
		return
	}
	ctx := context.Background()
	env := newEnv(t)
	m := env.open()
	nsA := env.netns("a")
	pathB := filepath.Join(env.dir, "b")
	if err := NewNetNS(pathB); err != nil {
		t.Fatal(err)
	}
	a, err := m.Attach(ctx, "aaaaaaaaaaaaaaaa", "a", nsA, DefaultNetwork, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Attach(ctx, "bbbbbbbbbbbbbbbb", "b", pathB, DefaultNetwork, nil)
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, nsA, netip.AddrPortFrom(a.IP, 7))
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	// While the agent is down: b's namespace goes away, someone deletes the
	// bridge and the nftables table.
	if err := DeleteNetNS(pathB); err != nil {
		t.Fatal(err)
	}
	br, err := netlink.LinkByName(DefaultBridgeName)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkDel(br); err != nil {
		t.Fatal(err)
	}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	c.DelTable(&nftables.Table{Name: nftTable, Family: nftables.TableFamilyIPv4})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := echo("", netip.AddrPortFrom(a.IP, 7), 500*time.Millisecond); err == nil {
		t.Fatal("a reachable without its bridge")
	}

	m2 := env.open()
	eps := m2.Endpoints("aaaaaaaaaaaaaaaa")
	if len(eps) != 1 || eps[0].IP != a.IP || eps[0].MAC != a.MAC {
		t.Fatalf("a after restart: %+v", eps)
	}
	if len(m2.Endpoints("bbbbbbbbbbbbbbbb")) != 0 {
		t.Fatal("b's endpoint kept although its namespace is gone")
	}
	if linkExists(t, b.HostIfName) {
		t.Fatal("b's veth left")
	}
	if !linkExists(t, DefaultBridgeName) || !hasMasquerade(t, netip.MustParsePrefix(DefaultSubnet)) {
		t.Fatal("bridge or NAT not recreated")
	}
	if got, err := echo("", netip.AddrPortFrom(a.IP, 7), 5*time.Second); err != nil || got != "echo hi\n" {
		t.Fatalf("agent -> a after restart: %q %v", got, err)
	}
	// b's address is free again, but allocation moves on round-robin.
	nsC := env.netns("c")
	cEP, err := m2.Attach(ctx, "cccccccccccccccc", "c", nsC, DefaultNetwork, nil)
	if err != nil || cEP.IP.String() != "172.17.0.4" {
		t.Fatalf("c: %+v %v", cEP, err)
	}
	// A veth on berth's bridge that the state does not know (a crash between
	// creating it and saving the state) is removed on the next Open.
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	stray := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vethstray"}, PeerName: "vethstray1"}
	if err := netlink.LinkAdd(stray); err != nil {
		t.Fatal(err)
	}
	br, err = netlink.LinkByName(DefaultBridgeName)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetMaster(stray, br); err != nil {
		t.Fatal(err)
	}
	m3 := env.open()
	if linkExists(t, "vethstray") {
		t.Fatal("stray veth on the bridge kept")
	}
	if len(m3.Endpoints("aaaaaaaaaaaaaaaa")) != 1 || !linkExists(t, a.HostIfName) {
		t.Fatal("a lost by the sweep")
	}
	if err := m3.DetachAll(ctx, "aaaaaaaaaaaaaaaa"); err != nil {
		t.Fatal(err)
	}
	if err := m3.DetachAll(ctx, "cccccccccccccccc"); err != nil {
		t.Fatal(err)
	}
}

func TestRootNetNSHelpers(t *testing.T) {
	if !isolated(t) {
		return
	}
	p := filepath.Join(t.TempDir(), "ns")
	if err := NewNetNS(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = DeleteNetNS(p) })
	if !isNetNS(p) {
		t.Fatal("not a namespace file")
	}
	self, _ := os.Readlink("/proc/self/ns/net")
	var inside string
	if err := inNS(p, func() (err error) {
		inside, err = os.Readlink(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if inside == self || inside == "" {
		t.Fatalf("namespace %q is the caller's %q", inside, self)
	}
	if err := NewNetNS(p); err == nil {
		t.Fatal("NewNetNS over an existing file succeeded")
	}
	if err := DeleteNetNS(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file left: %v", err)
	}
	if err := DeleteNetNS(p); err != nil {
		t.Fatalf("second delete: %v", err)
	}
}

// TestRootOutboundNAT puts an "outside" namespace behind an uplink of the
// agent's namespace. The outside has no route back to container subnets, so
// a container's connection only works if it is masqueraded to the uplink
// address, which is what the outside must see as the peer.
func TestRootOutboundNAT(t *testing.T) {
	if !isolated(t) {
		return
	}
	ctx := context.Background()
	env := newEnv(t)
	outside := env.netns("outside")
	ons, err := netns.GetFromPath(outside)
	if err != nil {
		t.Fatal(err)
	}
	uplink := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "up0"}, PeerName: "wan0", PeerNamespace: netlink.NsFd(int(ons))}
	err = netlink.LinkAdd(uplink)
	ons.Close()
	if err != nil {
		t.Fatal(err)
	}
	up0, err := netlink.LinkByName("up0")
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrAdd(up0, &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix("198.51.100.1/24"))}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(up0); err != nil {
		t.Fatal(err)
	}
	if err := inNS(outside, func() error {
		wan, err := netlink.LinkByName("wan0")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(wan, &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix("198.51.100.2/24"))}); err != nil {
			return err
		}
		return netlink.LinkSetUp(wan)
	}); err != nil {
		t.Fatal(err)
	}
	// The outside server answers with the address it sees as the peer.
	var l net.Listener
	if err := inNS(outside, func() (err error) {
		l, err = net.Listen("tcp4", "198.51.100.2:9000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, c.RemoteAddr().(*net.TCPAddr).IP.String()+"\n")
			_ = c.Close()
		}
	}()

	m := env.open()
	nsA := env.netns("a")
	if _, err := m.Attach(ctx, "aaaaaaaaaaaaaaaa", "a", nsA, DefaultNetwork, nil); err != nil {
		t.Fatal(err)
	}
	var seen string
	if err := inNS(nsA, func() error {
		c, err := net.DialTimeout("tcp4", "198.51.100.2:9000", 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		seen, err = bufio.NewReader(c).ReadString('\n')
		return err
	}); err != nil {
		t.Fatalf("container -> outside: %v", err)
	}
	if seen != "198.51.100.1\n" {
		t.Fatalf("outside saw the container as %q, want the masqueraded 198.51.100.1", seen)
	}
	// An internal network gets no NAT: the same dial fails.
	if _, err := m.Create(ctx, "sealed", CreateOptions{Internal: true}); err != nil {
		t.Fatal(err)
	}
	nsB := env.netns("b")
	if _, err := m.Attach(ctx, "bbbbbbbbbbbbbbbb", "b", nsB, "sealed", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := echo(nsB, netip.MustParseAddrPort("198.51.100.2:9000"), 700*time.Millisecond); err == nil {
		t.Fatal("a container on an internal network reached the outside")
	}
	for _, id := range []string{"aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"} {
		if err := m.DetachAll(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}
