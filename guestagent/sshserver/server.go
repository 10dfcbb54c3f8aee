package sshserver

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/guestagent/sshwire"
	"golang.org/x/crypto/ssh"
)

// Channel and request names the server handles; the wire formats are sshwire's.
const (
	// ChannelUDP is the custom channel type carrying UDP datagrams (sshwire.ChannelUDP).
	ChannelUDP         = sshwire.ChannelUDP
	ChannelStreamLocal = sshwire.ChannelStreamLocal
	ChannelDirectTCPIP = sshwire.ChannelDirectTCPIP
	ChannelSession     = sshwire.ChannelSession
	// RequestKeepAlive is the global request both ends send to detect a dead link.
	RequestKeepAlive = sshwire.RequestKeepAlive
)

// Defaults for zero Config fields.
const (
	DefaultKeepAlive        = 15 * time.Second
	DefaultKeepAliveMax     = 3
	DefaultDialTimeout      = 10 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultUDPIdleTimeout   = 60 * time.Second
)

// Errors of this package.
var (
	// ErrServerClosed is returned by Serve after Shutdown or Close.
	ErrServerClosed = errors.New("sshserver: server closed")
	// ErrInvalidConfig is returned by New for an unusable Config.
	ErrInvalidConfig = errors.New("sshserver: invalid config")
	// ErrUnauthorized is the authentication failure for a key that is not authorized.
	ErrUnauthorized = errors.New("sshserver: public key not authorized")
)

// Config configures a Server. HostKey and AuthorizedKeys are required.
type Config struct {
	// HostKey is the server's host key, generated and pinned by the host.
	HostKey ssh.Signer
	// AuthorizedKeys are the client keys allowed to log in (the instance key). Any user name is accepted.
	AuthorizedKeys []ssh.PublicKey
	// EngineSocket is the unix socket that direct-streamlocal@openssh.com may reach (the engine API).
	EngineSocket string
	// AllowStreamLocal lists further unix sockets that direct-streamlocal@openssh.com may reach.
	AllowStreamLocal []string
	// Dial dials direct-tcpip ("tcp") and UDP ("udp") targets; nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// DialTimeout bounds each dial for a channel; 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// Shell is the argv of a "shell" session; "exec" runs Shell plus "-c" and the command. Nil means /bin/sh.
	Shell []string
	// Env is the base environment of sessions; nil means the agent's own environment.
	Env []string
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// KeepAlive is the interval of the server's keepalive requests to the client; a client that misses
	// KeepAliveMax of them in a row is disconnected. 0 means DefaultKeepAlive, negative disables.
	KeepAlive time.Duration
	// KeepAliveMax is the number of missed keepalives before disconnecting; 0 means DefaultKeepAliveMax.
	KeepAliveMax int
	// HandshakeTimeout bounds the SSH handshake and authentication; 0 means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// UDPIdleTimeout closes a UDP channel after this long without a datagram either way; 0 means
	// DefaultUDPIdleTimeout.
	UDPIdleTimeout time.Duration
}

// Server is the agent's SSH server. Create it with New.
type Server struct {
	cfg    Config
	ssh    *ssh.ServerConfig
	log    *slog.Logger
	allow  map[string]bool
	ctx    context.Context // cancelled by Close: aborts every relay and session
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup // Serve loops and connection handlers
	idle      chan struct{}  // signalled when a connection ends (for Shutdown)

	token     []byte      // the handoff token (HandoffTokenLen random bytes)
	handoffOn atomic.Bool // ServeHandoff has been called: the token is handed out
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.HostKey == nil {
		return nil, fmt.Errorf("%w: no host key", ErrInvalidConfig)
	}
	if len(cfg.AuthorizedKeys) == 0 {
		return nil, fmt.Errorf("%w: no authorized keys", ErrInvalidConfig)
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if len(cfg.Shell) == 0 {
		cfg.Shell = []string{"/bin/sh"}
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.KeepAliveMax <= 0 {
		cfg.KeepAliveMax = DefaultKeepAliveMax
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.UDPIdleTimeout <= 0 {
		cfg.UDPIdleTimeout = DefaultUDPIdleTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:       cfg,
		log:       log,
		allow:     map[string]bool{},
		listeners: map[net.Listener]struct{}{},
		conns:     map[net.Conn]struct{}{},
		idle:      make(chan struct{}, 1),
	}
	for _, p := range append([]string{cfg.EngineSocket}, cfg.AllowStreamLocal...) {
		if p != "" {
			s.allow[filepath.Clean(p)] = true
		}
	}
	s.token = make([]byte, sshwire.HandoffTokenLen)
	if _, err := rand.Read(s.token); err != nil {
		return nil, fmt.Errorf("handoff token: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.ssh = serverConfig(cfg.HostKey, cfg.AuthorizedKeys)
	return s, nil
}

// serverConfig builds the x/crypto server configuration: public keys only, fast AEAD ciphers first.
func serverConfig(hostKey ssh.Signer, authorized []ssh.PublicKey) *ssh.ServerConfig {
	keys := make([][]byte, len(authorized))
	for i, k := range authorized {
		keys[i] = k.Marshal()
	}
	c := &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if authorizedKey(keys, key.Marshal()) {
				return &ssh.Permissions{Extensions: map[string]string{"pubkey-fp": ssh.FingerprintSHA256(key)}}, nil
			}
			return nil, fmt.Errorf("user %q key %s: %w", meta.User(), ssh.FingerprintSHA256(key), ErrUnauthorized)
		},
		MaxAuthTries: 6,
	}
	c.Ciphers = sshwire.Ciphers()
	c.AddHostKey(hostKey)
	return c
}

// authorizedKey reports whether key is one of keys, comparing every candidate in constant time.
func authorizedKey(keys [][]byte, key []byte) bool {
	found := 0
	for _, k := range keys {
		found |= subtle.ConstantTimeCompare(k, key)
	}
	return found == 1
}

// Serve accepts connections on l and serves each until it ends. It returns ErrServerClosed after Shutdown or
// Close, or the listener's error otherwise. l is closed when Serve returns.
func (s *Server) Serve(l net.Listener) error {
	return s.acceptLoop(l, s.handle)
}

// acceptLoop accepts connections on l and runs handle for each in its own goroutine, tracked for Shutdown
// and Close; temporary accept errors are retried with a growing delay. l is closed when it returns.
func (s *Server) acceptLoop(l net.Listener, handle func(net.Conn)) error {
	if !s.track(l) {
		l.Close()
		return ErrServerClosed
	}
	defer s.untrack(l)
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "delay", delay)
				select {
				case <-time.After(delay):
				case <-s.ctx.Done():
					return ErrServerClosed
				}
				continue
			}
			return fmt.Errorf("accept on %s: %w", l.Addr(), err)
		}
		delay = 0
		if !s.addConn(c) {
			c.Close()
			return ErrServerClosed
		}
		go func() {
			defer s.doneConn(c)
			handle(c)
		}()
	}
}

// ServeConn serves one already-established connection (a net.Pipe end, an accepted vsock connection) and
// returns when it ends. It returns ErrServerClosed if the server is closed.
func (s *Server) ServeConn(c net.Conn) error {
	if !s.addConn(c) {
		c.Close()
		return ErrServerClosed
	}
	defer s.doneConn(c)
	s.handle(c)
	return nil
}

// Shutdown stops accepting, then waits for open connections to end or ctx to end, and then closes what is
// left. It returns ctx's error if connections had to be closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			s.Close()
			return nil
		}
		select {
		case <-s.idle:
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		}
	}
}

// Close closes every listener and connection immediately and waits for their goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) track(l net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.listeners[l] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(l net.Listener) {
	s.mu.Lock()
	delete(s.listeners, l)
	s.mu.Unlock()
	l.Close()
	s.wg.Done()
}

func (s *Server) addConn(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) doneConn(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
	select {
	case s.idle <- struct{}{}:
	default:
	}
	s.wg.Done()
}

// handle runs one SSH connection: handshake, global requests, keepalives and channels. It returns when the
// connection is closed and every channel handler has finished.
func (s *Server) handle(c net.Conn) {
	log := s.log.With("remote", c.RemoteAddr().String())
	_ = c.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	bc := sshwire.NewBufConn(c)
	defer bc.Close()
	sc, chans, reqs, err := ssh.NewServerConn(bc, s.ssh)
	if err != nil {
		// Readiness probes connect and hang up: not worth more than debug.
		log.Debug("ssh handshake failed", "err", err)
		return
	}
	_ = c.SetDeadline(time.Time{})
	log = log.With("user", sc.User())
	log.Debug("ssh connection established", "key", sc.Permissions.Extensions["pubkey-fp"])

	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(2)
	go func() {
		defer wg.Done()
		for r := range reqs {
			// Keepalives and anything else: answer so the peer's waiters return; only keepalive succeeds.
			switch {
			case r.Type == sshwire.RequestHandoffToken:
				s.handoffToken(r)
			case r.WantReply:
				_ = r.Reply(r.Type == RequestKeepAlive, nil)
			}
		}
	}()
	go func() {
		defer wg.Done()
		s.keepAlive(sc, done, log)
	}()
	for nc := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handleChannel(nc, log)
		}()
	}
	close(done)
	sc.Close()
	wg.Wait()
	log.Debug("ssh connection closed")
}

// keepAlive sends keepalive requests every interval and closes the connection when KeepAliveMax of them in
// a row stay unanswered.
func (s *Server) keepAlive(sc *ssh.ServerConn, done <-chan struct{}, log *slog.Logger) {
	if s.cfg.KeepAlive < 0 {
		return
	}
	// A send error means the connection is gone; done follows.
	if missed := sshwire.KeepAlive(sc, s.cfg.KeepAlive, s.cfg.KeepAliveMax, done, nil); missed > 0 {
		log.Warn("ssh peer missed keepalives; closing", "missed", missed)
		sc.Close()
	}
}

func (s *Server) handleChannel(nc ssh.NewChannel, log *slog.Logger) {
	log = log.With("channel", nc.ChannelType())
	switch nc.ChannelType() {
	case ChannelStreamLocal:
		s.streamLocal(nc, log)
	case ChannelDirectTCPIP:
		s.directTCPIP(nc, log)
	case ChannelUDP:
		s.udp(nc, log)
	case ChannelSession:
		s.session(nc, log)
	default:
		log.Debug("unknown channel type rejected")
		_ = nc.Reject(ssh.UnknownChannelType, "unknown channel type")
	}
}
