// Package portfwd publishes containers' ports on the host (DESIGN.md §3). It follows the engine's container
// events (start, die, stop, destroy) and, for each published port of a running container, listens on the
// host (127.0.0.1 unless the -p names an address) and carries every TCP connection as a direct-tcpip channel,
// and every UDP flow over berth's UDP channel, to the container inside the guest. Half-close and
// backpressure are preserved (transport.Forward). When the event stream breaks (the SSH link died, the agent
// restarted), the manager resubscribes with backoff and reconciles its listeners with the running containers.
//
// The parts are injected: an Engine (events, list, inspect; NewMobyEngine adapts the Docker API client), a
// Dialer (transport.Client) and a TargetFunc choosing the guest address, so everything is tested with fakes.
package portfwd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/berth-dev/berth/hostshim/transport"
)

// Event is a container event.
type Event struct {
	// ID is the container id.
	ID string
	// Action is the Docker event action ("start", "die", "stop", "destroy", …).
	Action string
}

// Engine is the part of the engine API the forwarder uses.
type Engine interface {
	// Events streams container events until ctx ends or the stream breaks; the error channel then yields
	// one error and is closed.
	Events(ctx context.Context) (<-chan Event, <-chan error)
	// Running lists the ids of running containers.
	Running(ctx context.Context) ([]string, error)
	// Inspect describes a container.
	Inspect(ctx context.Context, id string) (Container, error)
}

// Dialer opens connections inside the guest; *transport.Client is one.
type Dialer interface {
	DialTCP(ctx context.Context, addr string) (net.Conn, error)
	DialUDP(ctx context.Context, addr string) (net.Conn, error)
}

// Handoffer is an optional capability of a Dialer: passing an accepted TCP connection to the guest, which
// then relays it itself (transport.Client.Handoff: the native driver's fast path). Errors for which
// transport.HandoffFallback holds send the connection through DialTCP instead.
type Handoffer interface {
	Handoff(ctx context.Context, c net.Conn, addr string) error
}

var (
	_ Dialer    = (*transport.Client)(nil)
	_ Handoffer = (*transport.Client)(nil)
)

// Defaults for zero Config fields.
const (
	DefaultUDPIdleTimeout = 60 * time.Second
	DefaultInspectTimeout = 10 * time.Second
	noTargetRetries       = 4                     // re-inspections of a container without an address
	noTargetDelay         = 50 * time.Millisecond // doubling: 50+100+200+400 ms
)

// Config configures a Manager. Engine and Dialer are required.
type Config struct {
	// Engine is the engine API.
	Engine Engine
	// Dialer reaches targets inside the guest.
	Dialer Dialer
	// Target chooses the guest address; nil means DefaultTarget.
	Target TargetFunc
	// ListenTCP opens host TCP listeners; nil means net.Listen("tcp", addr).
	ListenTCP func(addr string) (net.Listener, error)
	// ListenUDP opens host UDP sockets; nil means net.ListenPacket("udp", addr).
	ListenUDP func(addr string) (net.PacketConn, error)
	// UDPIdleTimeout ends a UDP flow after this long without a datagram; 0 means DefaultUDPIdleTimeout.
	UDPIdleTimeout time.Duration
	// Logger receives the manager's logs; nil discards them.
	Logger *slog.Logger
}

// Manager keeps the host listeners in step with the engine's running containers.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	active map[string]*active // by Forward.Key()
	byCtr  map[string][]string
	synced chan struct{} // closed after each successful reconcile, then replaced
}

// active is one open forward.
type active struct {
	Forward
	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a Manager; Run starts it.
func New(cfg Config) (*Manager, error) {
	if cfg.Engine == nil || cfg.Dialer == nil {
		return nil, errors.New("portfwd: Config needs Engine and Dialer")
	}
	if cfg.Target == nil {
		cfg.Target = DefaultTarget
	}
	if cfg.ListenTCP == nil {
		cfg.ListenTCP = func(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
	}
	if cfg.ListenUDP == nil {
		cfg.ListenUDP = func(addr string) (net.PacketConn, error) { return net.ListenPacket("udp", addr) }
	}
	if cfg.UDPIdleTimeout <= 0 {
		cfg.UDPIdleTimeout = DefaultUDPIdleTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{cfg: cfg, log: log, active: map[string]*active{}, byCtr: map[string][]string{}, synced: make(chan struct{})}, nil
}

// Forwards returns the open forwards, sorted by key.
func (m *Manager) Forwards() []Forward {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Forward, 0, len(m.active))
	for _, a := range m.active {
		out = append(out, a.Forward)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// Synced returns a channel closed after the next successful reconcile with the engine (tests, readiness).
func (m *Manager) Synced() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.synced
}

// Run follows the engine until ctx ends, then closes every listener and returns ctx.Err().
func (m *Manager) Run(ctx context.Context) error {
	defer m.closeAll()
	failures := 0
	for {
		err := m.follow(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		failures++
		d := transport.Backoff(failures, rand.Float64())
		m.log.Warn("engine event stream ended; resubscribing", "err", err, "in", d)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		if err == nil { // a stream that ran fine resets the backoff
			failures = 0
		}
	}
}

// follow subscribes to events, reconciles with the running containers, then applies events until the
// stream breaks. It returns nil if events were flowing before the break.
func (m *Manager) follow(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Subscribe first so that nothing between the list and the subscription is missed.
	evs, errc := m.cfg.Engine.Events(ctx)
	ids, err := m.cfg.Engine.Running(ctx)
	if err != nil {
		return err
	}
	m.reconcile(ctx, ids)
	for {
		select {
		case ev := <-evs:
			m.handle(ctx, ev)
		case err := <-errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// reconcile opens forwards for running containers and closes those of containers not running.
func (m *Manager) reconcile(ctx context.Context, ids []string) {
	running := map[string]bool{}
	for _, id := range ids {
		running[id] = true
		m.open(ctx, id)
	}
	m.mu.Lock()
	var gone []string
	for id := range m.byCtr {
		if !running[id] {
			gone = append(gone, id)
		}
	}
	m.mu.Unlock()
	for _, id := range gone {
		m.closeContainer(id)
	}
	m.mu.Lock()
	close(m.synced)
	m.synced = make(chan struct{})
	m.mu.Unlock()
}

// handle applies one event.
func (m *Manager) handle(ctx context.Context, ev Event) {
	switch ev.Action {
	case "start", "restart", "unpause":
		m.open(ctx, ev.ID)
	case "die", "stop", "destroy":
		// ("kill" and "oom" are followed by "die" once the process is really gone.)
		m.closeContainer(ev.ID)
	}
}

// open inspects a container and opens its forwards (those not open already). A running container whose
// address is not assigned yet is inspected again a few times (within about a second).
func (m *Manager) open(ctx context.Context, id string) {
	var fwds []Forward
	var errs []error
	for try := 0; ; try++ {
		ictx, cancel := context.WithTimeout(ctx, DefaultInspectTimeout)
		c, err := m.cfg.Engine.Inspect(ictx, id)
		cancel()
		if err != nil {
			m.log.Warn("cannot inspect container for its ports", "container", short(id), "err", err)
			return
		}
		fwds, errs = Plan(c, m.cfg.Target)
		if try >= noTargetRetries || c.NetworkMode == "none" || !slices.ContainsFunc(errs, func(err error) bool { return errors.Is(err, ErrNoTarget) }) {
			break
		}
		t := time.NewTimer(noTargetDelay << try)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
	for _, err := range errs {
		m.log.Warn("port not published", "container", short(id), "err", err)
	}
	for _, f := range fwds {
		m.start(f)
	}
}

// start opens one forward's host socket and serves it. A conflict is logged and leaves the others alone.
func (m *Manager) start(f Forward) {
	m.mu.Lock()
	if a, ok := m.active[f.Key()]; ok {
		m.mu.Unlock()
		if a.ContainerID != f.ContainerID {
			m.log.Error("port already published by another container", "listen", f.Listen, "proto", f.Proto,
				"container", short(f.ContainerID), "owner", short(a.ContainerID))
		}
		return
	}
	m.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	a := &active{Forward: f, cancel: cancel, done: make(chan struct{})}
	var serve func()
	switch f.Proto {
	case "tcp":
		l, err := m.cfg.ListenTCP(f.Listen)
		if err != nil {
			cancel()
			m.log.Error("cannot publish port", "listen", f.Listen, "proto", "tcp", "container", short(f.ContainerID), "err", err)
			return
		}
		serve = func() { _ = transport.ForwardHandoff(ctx, l, m.handoff(f), m.dialTCP(f)) }
	case "udp":
		pc, err := m.cfg.ListenUDP(f.Listen)
		if err != nil {
			cancel()
			m.log.Error("cannot publish port", "listen", f.Listen, "proto", "udp", "container", short(f.ContainerID), "err", err)
			return
		}
		serve = func() { m.serveUDP(ctx, pc, f) }
	}
	m.mu.Lock()
	m.active[f.Key()] = a
	m.byCtr[f.ContainerID] = append(m.byCtr[f.ContainerID], f.Key())
	m.mu.Unlock()
	m.log.Info("port published", "listen", f.Listen, "proto", f.Proto, "target", f.Target, "container", short(f.ContainerID))
	go func() {
		defer close(a.done)
		serve()
	}()
}

func (m *Manager) dialTCP(f Forward) func(ctx context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		c, err := m.cfg.Dialer.DialTCP(ctx, f.Target)
		if err != nil && ctx.Err() == nil {
			m.log.Warn("forwarded connection failed", "listen", f.Listen, "target", f.Target, "err", err)
		}
		return c, err
	}
}

// handoff returns the forward's handoff func, nil when the Dialer has none.
func (m *Manager) handoff(f Forward) func(ctx context.Context, c net.Conn) error {
	h, ok := m.cfg.Dialer.(Handoffer)
	if !ok {
		return nil
	}
	return func(ctx context.Context, c net.Conn) error {
		err := h.Handoff(ctx, c, f.Target)
		if err != nil && !transport.HandoffFallback(err) && ctx.Err() == nil {
			m.log.Warn("forwarded connection failed", "listen", f.Listen, "target", f.Target, "err", err)
		}
		return err
	}
}

// closeContainer closes a container's forwards and waits for them.
func (m *Manager) closeContainer(id string) {
	m.mu.Lock()
	keys := m.byCtr[id]
	delete(m.byCtr, id)
	var as []*active
	for _, k := range keys {
		if a := m.active[k]; a != nil && a.ContainerID == id {
			as = append(as, a)
			delete(m.active, k)
		}
	}
	m.mu.Unlock()
	for _, a := range as {
		a.cancel()
		<-a.done
		m.log.Info("port unpublished", "listen", a.Listen, "proto", a.Proto, "container", short(id))
	}
}

func (m *Manager) closeAll() {
	m.mu.Lock()
	var ids []string
	for id := range m.byCtr {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	for _, id := range ids {
		m.closeContainer(id)
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// String describes a forward for logs and status.
func (f Forward) String() string {
	return fmt.Sprintf("%s %s -> %s (%.12s)", f.Proto, f.Listen, f.Target, f.ContainerID)
}
