package portfwd

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/guestagent/sshwire/wiretest"
)

func TestPlan(t *testing.T) {
	ip := netip.MustParseAddr("10.88.0.2")
	c := Container{ID: "c1", Running: true, NetworkMode: "bridge", IPs: []netip.Addr{ip}, Bindings: []Binding{
		{Proto: "tcp", ContainerPort: 80, HostPort: 8080},
		{Proto: "tcp", ContainerPort: 80, HostPort: 8080}, // duplicate
		{Proto: "udp", ContainerPort: 53, HostIP: "0.0.0.0", HostPort: 5353},
		{Proto: "tcp", ContainerPort: 81, HostIP: "::1", HostPort: 8081},
		{Proto: "tcp", ContainerPort: 82},                // ephemeral: unsupported
		{Proto: "sctp", ContainerPort: 83, HostPort: 83}, // unsupported protocol
		{Proto: "tcp", ContainerPort: 84, HostIP: "nope", HostPort: 84},
	}}
	got, errs := Plan(c, nil)
	want := []Forward{
		{ContainerID: "c1", Proto: "tcp", Listen: "127.0.0.1:8080", Target: "10.88.0.2:80"},
		{ContainerID: "c1", Proto: "tcp", Listen: "[::1]:8081", Target: "10.88.0.2:81"},
		{ContainerID: "c1", Proto: "udp", Listen: "0.0.0.0:5353", Target: "10.88.0.2:53"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(errs) != 3 {
		t.Fatalf("Plan:\n got %v (errs %v)\nwant %v", got, errs, want)
	}
	c.Running = false
	if got, errs := Plan(c, nil); len(got) != 0 || len(errs) != 0 {
		t.Fatalf("stopped container: %v %v", got, errs)
	}
	// No IP: host-network containers are reached on the guest's loopback, others wait.
	host := Container{ID: "h", Running: true, NetworkMode: "host", Bindings: []Binding{{Proto: "tcp", ContainerPort: 9, HostPort: 9}}}
	if got, _ := Plan(host, nil); len(got) != 1 || got[0].Target != "127.0.0.1:9" {
		t.Fatalf("host network: %v", got)
	}
	host.NetworkMode = "bridge"
	if got, errs := Plan(host, nil); len(got) != 0 || len(errs) != 1 || !errors.Is(errs[0], ErrNoTarget) {
		t.Fatalf("no address: %v %v", got, errs)
	}
	// A custom resolver decides.
	got, _ = Plan(host, func(Container, Binding) (string, error) { return "192.0.2.1:1", nil })
	if len(got) != 1 || got[0].Target != "192.0.2.1:1" {
		t.Fatalf("custom target: %v", got)
	}
}

// fakeEngine serves scripted containers and events.
type fakeEngine struct {
	mu         sync.Mutex
	containers map[string]Container
	events     chan Event
	breaks     chan error // an error here ends the current event stream
	subs       int
	onInspect  func(c *Container) // may change what Inspect returns
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{containers: map[string]Container{}, events: make(chan Event), breaks: make(chan error)}
}

func (e *fakeEngine) Events(ctx context.Context) (<-chan Event, <-chan error) {
	e.mu.Lock()
	e.subs++
	e.mu.Unlock()
	out, errc := make(chan Event), make(chan error, 1)
	go func() {
		for {
			select {
			case ev := <-e.events:
				select {
				case out <- ev:
				case <-ctx.Done():
					errc <- ctx.Err()
					return
				}
			case err := <-e.breaks:
				errc <- err
				return
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		}
	}()
	return out, errc
}

func (e *fakeEngine) Running(context.Context) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var ids []string
	for id, c := range e.containers {
		if c.Running {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (e *fakeEngine) Inspect(_ context.Context, id string) (Container, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.containers[id]
	if !ok {
		return Container{}, errors.New("no such container")
	}
	if e.onInspect != nil {
		e.onInspect(&c)
		e.containers[id] = c
	}
	return c, nil
}

func (e *fakeEngine) set(c Container) {
	e.mu.Lock()
	e.containers[c.ID] = c
	e.mu.Unlock()
}

// directDialer stands in for the SSH transport: it dials targets directly.
type directDialer struct{}

func (directDialer) DialTCP(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

func (directDialer) DialUDP(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "udp", addr)
}

func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	pc, err := net.ListenPacket("udp", l.Addr().String())
	if err != nil { // the UDP port is taken: try another
		return freePort(t)
	}
	pc.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func udpEcho(t *testing.T) uint16 {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, a, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], a)
		}
	}()
	return uint16(pc.LocalAddr().(*net.UDPAddr).Port)
}

func hostNet(id string, bs ...Binding) Container {
	return Container{ID: id, Running: true, NetworkMode: "host", Bindings: bs}
}

func startManager(t *testing.T, e Engine) *Manager {
	t.Helper()
	m, err := New(Config{Engine: e, Dialer: directDialer{}, UDPIdleTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	synced := m.Synced()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if f := m.Forwards(); len(f) != 0 {
			t.Errorf("forwards left after Run: %v", f)
		}
	})
	waitClosed(t, synced)
	return m
}

func waitClosed(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out")
	}
}

// send delivers an event and waits until the manager has applied it: the manager takes the first no-op
// only after handling ev, and the fake engine accepts the second only after the manager took the first.
func send(t *testing.T, e *fakeEngine, ev Event) {
	t.Helper()
	for _, x := range []Event{ev, {ID: "-", Action: "noop"}, {ID: "-", Action: "noop"}} {
		select {
		case e.events <- x:
		case <-time.After(10 * time.Second):
			t.Fatal("event not taken")
		}
	}
}

func addr(p uint16) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p))) }

func TestStartStopEvents(t *testing.T) {
	e := newFakeEngine()
	m := startManager(t, e)
	hp, target := freePort(t), uint16(wiretest.Echo(t).Port)
	e.set(hostNet("c1", Binding{Proto: "tcp", ContainerPort: target, HostPort: hp}))
	send(t, e, Event{ID: "c1", Action: "start"})
	msg := make([]byte, 1<<20)
	_, _ = rand.Read(msg)
	got, err := wiretest.EchoOnce(addr(hp), msg, 10*time.Second)
	if err != nil || string(got) != string(msg) {
		t.Fatalf("echo through the forward: %d bytes, %v", len(got), err)
	}
	if f := m.Forwards(); len(f) != 1 || f[0].Listen != addr(hp) {
		t.Fatalf("forwards: %v", f)
	}
	c := e.containers["c1"]
	c.Running = false
	e.set(c)
	send(t, e, Event{ID: "c1", Action: "die"})
	if _, err := net.DialTimeout("tcp", addr(hp), time.Second); err == nil {
		t.Fatal("host listener still open after die")
	}
	if f := m.Forwards(); len(f) != 0 {
		t.Fatalf("forwards after die: %v", f)
	}
}

// One port conflict is logged and does not stop the container's other ports or other containers.
func TestConflict(t *testing.T) {
	e := newFakeEngine()
	m := startManager(t, e)
	p1, p2, target := freePort(t), freePort(t), uint16(wiretest.Echo(t).Port)
	e.set(hostNet("a", Binding{Proto: "tcp", ContainerPort: target, HostPort: p1}))
	e.set(hostNet("b", Binding{Proto: "tcp", ContainerPort: target, HostPort: p1}, Binding{Proto: "tcp", ContainerPort: target, HostPort: p2}))
	// A port taken by someone else on the host.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bp := uint16(busy.Addr().(*net.TCPAddr).Port)
	e.set(hostNet("c", Binding{Proto: "tcp", ContainerPort: target, HostPort: bp}))
	for _, id := range []string{"a", "b", "c"} {
		send(t, e, Event{ID: id, Action: "start"})
	}
	fw := m.Forwards()
	if len(fw) != 2 || fw[0].ContainerID == fw[1].ContainerID {
		t.Fatalf("forwards: %v", fw)
	}
	for _, p := range []uint16{p1, p2} {
		if got, err := wiretest.EchoOnce(addr(p), []byte("x"), 10*time.Second); err != nil || string(got) != "x" {
			t.Fatalf("port %d: %q %v", p, got, err)
		}
	}
	// b's stop must not close a's port.
	send(t, e, Event{ID: "b", Action: "stop"})
	if got, err := wiretest.EchoOnce(addr(p1), []byte("y"), 10*time.Second); err != nil || string(got) != "y" {
		t.Fatalf("a's port after b stopped: %q %v", got, err)
	}
}

func TestUDP(t *testing.T) {
	e := newFakeEngine()
	startManager(t, e)
	hp, target := freePort(t), udpEcho(t)
	e.set(hostNet("u", Binding{Proto: "udp", ContainerPort: target, HostIP: "127.0.0.1", HostPort: hp}))
	send(t, e, Event{ID: "u", Action: "start"})
	for i := range 2 { // two clients: two flows
		c, err := net.Dial("udp", addr(hp))
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		for _, msg := range []string{"one", "two", string(make([]byte, 60000))} {
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 65535)
			n, err := c.Read(buf)
			if err != nil || string(buf[:n]) != msg {
				t.Fatalf("client %d: datagram of %d: got %d bytes, %v", i, len(msg), n, err)
			}
		}
		c.Close()
	}
	send(t, e, Event{ID: "u", Action: "destroy"})
	pc, err := net.ListenPacket("udp", addr(hp))
	if err != nil {
		t.Fatalf("udp port still bound after destroy: %v", err)
	}
	pc.Close()
}

// When the event stream breaks, the manager resubscribes and reconciles: ports of containers that stopped
// meanwhile close, those of containers that started open, and those still running stay.
func TestResubscribe(t *testing.T) {
	e := newFakeEngine()
	target := uint16(wiretest.Echo(t).Port)
	pa, pb, pc := freePort(t), freePort(t), freePort(t)
	e.set(hostNet("a", Binding{Proto: "tcp", ContainerPort: target, HostPort: pa}))
	e.set(hostNet("b", Binding{Proto: "tcp", ContainerPort: target, HostPort: pb}))
	m := startManager(t, e) // a and b run at startup
	if f := m.Forwards(); len(f) != 2 {
		t.Fatalf("startup forwards: %v", f)
	}
	b := e.containers["b"]
	b.Running = false
	e.set(b)
	e.set(hostNet("c", Binding{Proto: "tcp", ContainerPort: target, HostPort: pc}))
	synced := m.Synced()
	e.breaks <- errors.New("link down")
	waitClosed(t, synced)
	f := m.Forwards()
	if len(f) != 2 || f[0].ContainerID == "b" || f[1].ContainerID == "b" {
		t.Fatalf("forwards after resync: %v", f)
	}
	for _, p := range []uint16{pa, pc} {
		if got, err := wiretest.EchoOnce(addr(p), []byte("z"), 10*time.Second); err != nil || string(got) != "z" {
			t.Fatalf("port %d after resync: %q %v", p, got, err)
		}
	}
	if _, err := net.DialTimeout("tcp", addr(pb), time.Second); err == nil {
		t.Fatal("b's port open after resync")
	}
}

// A container whose address is assigned a moment after its start event is still published.
func TestAddressLate(t *testing.T) {
	e := newFakeEngine()
	m := startManager(t, e)
	hp, target := freePort(t), uint16(wiretest.Echo(t).Port)
	inspections := 0
	e.mu.Lock()
	e.onInspect = func(c *Container) {
		if inspections++; inspections == 3 {
			c.IPs = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
		}
	}
	e.mu.Unlock()
	e.set(Container{ID: "late", Running: true, NetworkMode: "bridge", Bindings: []Binding{{Proto: "tcp", ContainerPort: target, HostPort: hp}}})
	send(t, e, Event{ID: "late", Action: "start"})
	if f := m.Forwards(); len(f) != 1 || f[0].Target != addr(target) {
		t.Fatalf("forwards: %v (after %d inspections)", f, inspections)
	}
	if got, err := wiretest.EchoOnce(addr(hp), []byte("late"), 10*time.Second); err != nil || string(got) != "late" {
		t.Fatalf("echo: %q %v", got, err)
	}
}
