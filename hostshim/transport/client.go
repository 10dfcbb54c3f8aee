package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/guestagent/sshwire"
	"golang.org/x/crypto/ssh"
)

// ChannelUDP carries UDP datagrams (sshwire.ChannelUDP): open payload (string host, uint32 port); every
// datagram either way is a 2-byte big-endian length followed by the bytes.
const ChannelUDP = sshwire.ChannelUDP

// Defaults for zero Config fields.
const (
	DefaultUser           = "berth"
	DefaultKeepAlive      = 5 * time.Second
	DefaultKeepAliveMax   = 3
	DefaultConnectTimeout = 10 * time.Second
	backoffMin            = 100 * time.Millisecond
	backoffMax            = 5 * time.Second
)

// Errors of this package.
var (
	// ErrHostKeyMismatch: the agent presented a host key other than the pinned one; nothing was sent.
	ErrHostKeyMismatch = errors.New("transport: host key mismatch")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("transport: client closed")
	// ErrInvalidConfig: New was given an unusable Config.
	ErrInvalidConfig = errors.New("transport: invalid config")
	// ErrRejected: the agent refused to open a channel (prohibited target, connection refused, …); the
	// *ssh.OpenChannelError is wrapped too.
	ErrRejected = errors.New("transport: channel rejected by agent")
	// ErrLinkDown: the SSH connection died (EOF, keepalive timeout) and no new one is up yet.
	ErrLinkDown = errors.New("transport: ssh link down")
	// ErrKeepAliveTimeout: the agent stopped answering keepalives.
	ErrKeepAliveTimeout = errors.New("transport: keepalive timeout")
	// ErrDatagramTooLarge: a UDP datagram longer than 65535 bytes.
	ErrDatagramTooLarge = errors.New("transport: datagram too large")
)

// Dialer reaches the agent's SSH endpoint; each platform driver supplies one.
type Dialer func(ctx context.Context) (net.Conn, error)

// Config configures a Client. Dial, Signer and HostKey are required.
type Config struct {
	// Dial opens a byte stream to the agent's SSH server.
	Dial Dialer
	// User is the SSH user name; empty means DefaultUser. The agent does not switch users.
	User string
	// Signer is the instance key the agent authorizes.
	Signer ssh.Signer
	// HostKey is the agent's pinned host key; any other key fails the handshake.
	HostKey ssh.PublicKey
	// KeepAlive is the keepalive interval; 0 means DefaultKeepAlive, negative disables keepalives.
	KeepAlive time.Duration
	// KeepAliveMax is the number of unanswered keepalives that declare the link dead; 0 means
	// DefaultKeepAliveMax.
	KeepAliveMax int
	// ConnectTimeout bounds one connection attempt (dial and handshake); 0 means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// HandoffSocket is the agent's connection-handoff socket on this host (sshwire's handoff protocol), for
	// an agent that shares the host's kernel (the native driver); empty disables Handoff.
	HandoffSocket string
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger
}

// Client keeps one SSH connection to the agent, opened on first use and re-opened with jittered exponential
// backoff (100 ms to 5 s) when it dies. It is safe for concurrent use.
type Client struct {
	cfg    Config
	log    *slog.Logger
	pinned []byte
	ctx    context.Context // the client's life; Close cancels it
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	cur      *link
	attempt  chan struct{} // closed when the running connection attempt ends; nil if none runs
	lastErr  error
	failures int
	next     time.Time // earliest start of the next attempt
	wg       sync.WaitGroup
}

// link is one SSH connection.
type link struct {
	c    *ssh.Client
	done chan struct{} // closed when the connection has ended
	once sync.Once
	err  atomic.Pointer[error] // why it was killed, set before c is closed

	handoffMu    sync.Mutex
	handoffToken []byte // the agent's handoff token, fetched on first use
	handoffNone  bool   // the agent refused to hand out a token on this connection
}

func (l *link) kill(err error) {
	l.once.Do(func() {
		l.err.Store(&err)
		l.c.Close()
	})
}

// dead reports whether l was killed or has ended.
func (l *link) dead() bool {
	if l.err.Load() != nil {
		return true
	}
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// New validates cfg and returns a Client; it does not connect yet.
func New(cfg Config) (*Client, error) {
	switch {
	case cfg.Dial == nil:
		return nil, fmt.Errorf("%w: no dialer", ErrInvalidConfig)
	case cfg.Signer == nil:
		return nil, fmt.Errorf("%w: no client key", ErrInvalidConfig)
	case cfg.HostKey == nil:
		return nil, fmt.Errorf("%w: no pinned host key", ErrInvalidConfig)
	}
	if cfg.User == "" {
		cfg.User = DefaultUser
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.KeepAliveMax <= 0 {
		cfg.KeepAliveMax = DefaultKeepAliveMax
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, log: log, pinned: cfg.HostKey.Marshal()}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Connect makes sure the SSH connection is up, waiting for one attempt (after any backoff) or ctx.
func (c *Client) Connect(ctx context.Context) error {
	_, err := c.get(ctx)
	return err
}

// Close closes the connection and every channel on it and stops reconnecting.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	l := c.cur
	c.cur = nil
	c.mu.Unlock()
	c.cancel()
	if l != nil {
		l.kill(ErrClosed)
	}
	c.wg.Wait()
	return nil
}

// get returns the live link, starting a connection attempt if there is none and waiting for it.
func (c *Client) get(ctx context.Context) (*link, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if c.cur != nil && !c.cur.dead() {
		l := c.cur
		c.mu.Unlock()
		return l, nil
	}
	if c.attempt == nil {
		c.attempt = make(chan struct{})
		c.wg.Add(1)
		go c.connect(c.attempt)
	}
	a := c.attempt
	c.mu.Unlock()

	select {
	case <-a:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return nil, ErrClosed
	case c.cur != nil && !c.cur.dead():
		return c.cur, nil
	case c.lastErr != nil:
		return nil, c.lastErr
	default:
		return nil, ErrLinkDown
	}
}

// connect runs one connection attempt after the backoff delay and publishes its outcome.
func (c *Client) connect(done chan struct{}) {
	defer c.wg.Done()
	c.mu.Lock()
	wait := time.Until(c.next)
	c.mu.Unlock()
	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.ctx.Done():
		}
		t.Stop()
	}
	l, err := c.dial()

	c.mu.Lock()
	defer c.mu.Unlock()
	defer close(done)
	c.attempt = nil
	if err == nil && c.closed {
		l.c.Close()
		err = ErrClosed
	}
	if err != nil {
		c.failures++
		c.next = time.Now().Add(Backoff(c.failures, rand.Float64()))
		c.lastErr = err
		c.log.Debug("agent connection attempt failed", "err", err, "failures", c.failures)
		return
	}
	if c.failures > 0 || c.lastErr != nil {
		c.log.Info("agent connection re-established")
	}
	c.failures, c.next, c.lastErr = 0, time.Time{}, nil
	c.cur = l
	c.wg.Add(2)
	go c.watch(l)
	go c.keepAlive(l)
}

// Backoff is the delay before attempt failures+1 of anything that reconnects to the agent: 100 ms
// doubling to 5 s, scaled into [½, 1) by jitter (a value in [0, 1), e.g. rand.Float64()).
func Backoff(failures int, jitter float64) time.Duration {
	d := backoffMin
	for i := 1; i < failures && d < backoffMax; i++ {
		d *= 2
	}
	d = min(d, backoffMax)
	return d/2 + time.Duration(jitter*float64(d/2))
}

// dial opens the byte stream and runs the SSH handshake, bounded by ConnectTimeout and Close.
func (c *Client) dial() (*link, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ConnectTimeout)
	defer cancel()
	conn, err := c.cfg.Dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("dial agent: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	var mismatch atomic.Pointer[error]
	cfg := c.clientConfig(func(err error) { mismatch.Store(&err) })
	bc := sshwire.NewBufConn(conn)
	sc, chans, reqs, err := ssh.NewClientConn(bc, "berth-agent", cfg)
	if !stop() && err == nil {
		sc.Close()
		err = ctx.Err()
	}
	if err != nil {
		bc.Close()
		if m := mismatch.Load(); m != nil {
			return nil, *m
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ssh handshake with agent: %w (%w)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("ssh handshake with agent: %w", err)
	}
	_ = conn.SetDeadline(time.Time{})
	c.log.Debug("agent connection established", "remote", conn.RemoteAddr().String())
	return &link{c: ssh.NewClient(sc, chans, reqs), done: make(chan struct{})}, nil
}

// clientConfig builds the x/crypto client configuration; onMismatch records a host key mismatch so that it
// survives x/crypto's error wrapping.
func (c *Client) clientConfig(onMismatch func(error)) *ssh.ClientConfig {
	cfg := &ssh.ClientConfig{
		User: c.cfg.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(c.cfg.Signer)},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if bytes.Equal(key.Marshal(), c.pinned) {
				return nil
			}
			err := fmt.Errorf("%w: agent presented %s %s, pinned %s %s", ErrHostKeyMismatch,
				key.Type(), ssh.FingerprintSHA256(key), c.cfg.HostKey.Type(), ssh.FingerprintSHA256(c.cfg.HostKey))
			onMismatch(err)
			return err
		},
		HostKeyAlgorithms: hostKeyAlgorithms(c.cfg.HostKey.Type()),
	}
	cfg.Ciphers = sshwire.Ciphers()
	return cfg
}

// hostKeyAlgorithms asks the server for a signature with the pinned key's algorithm.
func hostKeyAlgorithms(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	}
	return []string{keyType}
}

// watch waits for l to end, then starts reconnecting in the background.
func (c *Client) watch(l *link) {
	defer c.wg.Done()
	err := l.c.Wait()
	close(l.done)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == l {
		c.cur = nil
	}
	if c.closed {
		return
	}
	if killed := l.err.Load(); killed != nil {
		err = *killed
	}
	c.log.Warn("agent connection lost; reconnecting", "err", err)
	c.wg.Add(1)
	go c.reconnect()
}

// reconnect attempts connections (with backoff) until one is up or the client is closed.
func (c *Client) reconnect() {
	defer c.wg.Done()
	for {
		if _, err := c.get(c.ctx); err == nil || c.ctx.Err() != nil {
			return
		}
	}
}

// keepAlive sends a keepalive every interval and kills the link when KeepAliveMax in a row stay unanswered.
func (c *Client) keepAlive(l *link) {
	defer c.wg.Done()
	if c.cfg.KeepAlive < 0 {
		return
	}
	if missed := sshwire.KeepAlive(l.c, c.cfg.KeepAlive, c.cfg.KeepAliveMax, l.done, l.kill); missed > 0 {
		l.kill(fmt.Errorf("%w: %d unanswered", ErrKeepAliveTimeout, missed))
	}
}

// open opens a channel, reconnecting once if the link turns out to be dead.
func (c *Client) open(ctx context.Context, typ string, payload []byte) (ssh.Channel, <-chan *ssh.Request, error) {
	for try := 0; ; try++ {
		l, err := c.get(ctx)
		if err != nil {
			return nil, nil, err
		}
		ch, reqs, err := openChannel(ctx, l.c, typ, payload)
		if err == nil {
			return ch, reqs, nil
		}
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			return nil, nil, fmt.Errorf("%w: %w", ErrRejected, err)
		}
		if ctx.Err() != nil || try > 0 {
			return nil, nil, err
		}
		l.kill(err) // the link is broken; get starts a new one
	}
}

// openChannel is ssh.Client.OpenChannel bounded by ctx; a channel opened after ctx ended is closed.
func openChannel(ctx context.Context, sc *ssh.Client, typ string, payload []byte) (ssh.Channel, <-chan *ssh.Request, error) {
	type result struct {
		ch   ssh.Channel
		reqs <-chan *ssh.Request
		err  error
	}
	r := make(chan result, 1)
	go func() {
		ch, reqs, err := sc.OpenChannel(typ, payload)
		r <- result{ch, reqs, err}
	}()
	select {
	case x := <-r:
		return x.ch, x.reqs, x.err
	case <-ctx.Done():
		go func() {
			if x := <-r; x.err == nil {
				go ssh.DiscardRequests(x.reqs)
				x.ch.Close()
			}
		}()
		return nil, nil, ctx.Err()
	}
}

// DialStreamLocal connects to the unix socket path inside the guest (direct-streamlocal@openssh.com). The
// returned net.Conn is a *Conn.
func (c *Client) DialStreamLocal(ctx context.Context, path string) (net.Conn, error) {
	payload := ssh.Marshal(sshwire.StreamLocalOpen{SocketPath: path})
	ch, reqs, err := c.open(ctx, sshwire.ChannelStreamLocal, payload)
	if err != nil {
		return nil, fmt.Errorf("dial guest unix %s: %w", path, err)
	}
	a := &net.UnixAddr{Name: path, Net: "unix"}
	return newConn(ch, reqs, a, a), nil
}

// DialTCP connects to addr (host:port) from inside the guest (direct-tcpip). The returned net.Conn is a *Conn.
func (c *Client) DialTCP(ctx context.Context, addr string) (net.Conn, error) {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial guest tcp %s: %w", addr, err)
	}
	payload := ssh.Marshal(sshwire.DirectTCPIPOpen{Host: host, Port: port, OriginHost: "127.0.0.1"})
	ch, reqs, err := c.open(ctx, sshwire.ChannelDirectTCPIP, payload)
	if err != nil {
		return nil, fmt.Errorf("dial guest tcp %s: %w", addr, err)
	}
	return newConn(ch, reqs, &net.TCPAddr{}, guestAddr{"tcp", addr}), nil
}

// DialUDP opens a UDP flow to addr (host:port) from inside the guest over ChannelUDP. The returned net.Conn
// is a *UDPConn: each Write sends one datagram and each Read returns one.
func (c *Client) DialUDP(ctx context.Context, addr string) (net.Conn, error) {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial guest udp %s: %w", addr, err)
	}
	payload := ssh.Marshal(sshwire.UDPOpen{Host: host, Port: port})
	ch, reqs, err := c.open(ctx, sshwire.ChannelUDP, payload)
	if err != nil {
		return nil, fmt.Errorf("dial guest udp %s: %w", addr, err)
	}
	return &UDPConn{Conn: newConn(ch, reqs, &net.UDPAddr{}, guestAddr{"udp", addr})}, nil
}

// Session opens a session channel (shell or exec, for `berth ssh`).
func (c *Client) Session(ctx context.Context) (*ssh.Session, error) {
	for try := 0; ; try++ {
		l, err := c.get(ctx)
		if err != nil {
			return nil, fmt.Errorf("open session: %w", err)
		}
		s, err := l.c.NewSession()
		if err == nil {
			return s, nil
		}
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			return nil, fmt.Errorf("open session: %w: %w", ErrRejected, err)
		}
		if ctx.Err() != nil || try > 0 {
			return nil, fmt.Errorf("open session: %w", err)
		}
		l.kill(err)
	}
}

func splitHostPort(addr string) (string, uint32, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", ps, err)
	}
	return host, uint32(port), nil
}

// guestAddr names an address inside the guest.
type guestAddr struct{ network, addr string }

func (a guestAddr) Network() string { return a.network }
func (a guestAddr) String() string  { return a.addr }
