package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/guestagent/sshserver"
	"github.com/berth-dev/berth/guestagent/sshwire/wiretest"
	"golang.org/x/crypto/ssh"
)

func TestNewValidates(t *testing.T) {
	s := newSigner(t)
	for _, cfg := range []Config{
		{},
		{Dial: DialUnix("x"), Signer: s},
		{Dial: DialUnix("x"), HostKey: s.PublicKey()},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("New(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		failures int
		jitter   float64
		want     time.Duration
	}{
		{1, 0, 50 * time.Millisecond},
		{1, 0.999999, 100 * time.Millisecond},
		{2, 0, 100 * time.Millisecond},
		{3, 0.5, 300 * time.Millisecond},
		{7, 0, 2500 * time.Millisecond},
		{50, 0.999999, 5 * time.Second},
	} {
		got := Backoff(tc.failures, tc.jitter).Round(time.Millisecond)
		if got != tc.want {
			t.Errorf("Backoff(%d, %v) = %v, want %v", tc.failures, tc.jitter, got, tc.want)
		}
	}
}

// TestHostKeyMismatch: a server with another host key is refused during key exchange, before the client
// authenticates or opens anything.
func TestHostKeyMismatch(t *testing.T) {
	dir := shortTempDir(t)
	sock := dir + "/ssh.sock"
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var authAttempts atomic.Int32
	serverErr := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer c.Close()
		cfg := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) {
			authAttempts.Add(1)
			return nil, nil
		}}
		cfg.AddHostKey(newSigner(t)) // not the pinned key
		sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
		if err == nil {
			go ssh.DiscardRequests(reqs)
			for nc := range chans {
				nc.Reject(ssh.Prohibited, "")
				err = errors.New("a channel was opened")
			}
			sc.Close()
		}
		serverErr <- err
	}()
	pinned := newSigner(t)
	c, err := New(Config{Dial: DialUnix(sock), Signer: newSigner(t), HostKey: pinned.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.DialStreamLocal(context.Background(), "/run/berth/engine.sock")
	if !errors.Is(err, ErrHostKeyMismatch) {
		t.Fatalf("dial = %v, want ErrHostKeyMismatch", err)
	}
	if !strings.Contains(err.Error(), ssh.FingerprintSHA256(pinned.PublicKey())) {
		t.Errorf("error does not name the pinned key: %v", err)
	}
	if err := <-serverErr; err == nil {
		t.Fatal("server handshake completed")
	}
	if n := authAttempts.Load(); n != 0 {
		t.Fatalf("client tried to authenticate %d times with a mismatched host key", n)
	}
}

func TestWrongClientKeyRefused(t *testing.T) {
	a := startAgent(t, nil)
	c := a.client(t, func(c *Config) { c.Signer = newSigner(t) })
	_, err := c.DialStreamLocal(context.Background(), a.echoSock)
	if err == nil || errors.Is(err, ErrHostKeyMismatch) || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("dial with an unauthorized key = %v", err)
	}
}

func TestStreamLocal(t *testing.T) {
	a := startAgent(t, nil)
	c := a.client(t, nil)
	ctx := context.Background()
	conn := a.dialEcho(t, c)
	expectEcho(t, conn, "engine")
	if _, err := c.DialStreamLocal(ctx, "/etc/passwd"); !errors.Is(err, ErrRejected) {
		t.Fatalf("disallowed path = %v, want ErrRejected", err)
	}
	var oce *ssh.OpenChannelError
	if _, err := c.DialStreamLocal(ctx, a.echoSock+".other"); !errors.As(err, &oce) || oce.Reason != ssh.Prohibited {
		t.Fatalf("disallowed path = %v, want Prohibited", err)
	}
	if err := conn.SetDeadline(time.Now()); err == nil {
		t.Fatal("SetDeadline on a channel succeeded")
	}
}

func TestDialTCPHalfClose(t *testing.T) {
	a := startAgent(t, nil)
	c := a.client(t, nil)
	ctx := context.Background()

	// The target reads to EOF and then answers with the byte count.
	l := listenTCP(t)
	go func() {
		tc, err := l.Accept()
		if err != nil {
			return
		}
		defer tc.Close()
		n, _ := io.Copy(io.Discard, tc)
		fmt.Fprintf(tc, "%d", n)
	}()
	conn, err := c.DialTCP(ctx, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(make([]byte, 300000)); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*Conn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != "300000" {
		t.Fatalf("answer after CloseWrite = %q, %v", got, err)
	}

	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := closed.Addr().String()
	closed.Close()
	if _, err := c.DialTCP(ctx, addr); !errors.Is(err, ErrRejected) {
		t.Fatalf("dial closed port = %v, want ErrRejected", err)
	}
	if _, err := c.DialTCP(ctx, "nonsense"); err == nil {
		t.Fatal("DialTCP accepted an address without a port")
	}
}

func TestDialUDP(t *testing.T) {
	a := startAgent(t, nil)
	c := a.client(t, nil)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(bytes.ToUpper(buf[:n]), from)
		}
	}()
	conn, err := c.DialUDP(context.Background(), pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, msg := range []string{"dns?", "", strings.Repeat("q", 50000)} {
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 65536)
		n, err := conn.Read(buf)
		if err != nil || string(buf[:n]) != strings.ToUpper(msg) {
			t.Fatalf("datagram %.8q: got %.8q (%d bytes), %v", msg, buf[:n], n, err)
		}
	}
	// A short buffer truncates one datagram and the next is intact.
	conn.Write([]byte("truncated"))
	conn.Write([]byte("next"))
	small := make([]byte, 4)
	if n, err := conn.Read(small); err != nil || string(small[:n]) != "TRUN" {
		t.Fatalf("truncated read = %q, %v", small[:n], err)
	}
	if n, err := conn.Read(small); err != nil || string(small[:n]) != "NEXT" {
		t.Fatalf("read after truncation = %q, %v", small[:n], err)
	}
	if _, err := conn.Write(make([]byte, 70000)); !errors.Is(err, ErrDatagramTooLarge) {
		t.Fatalf("oversized write = %v", err)
	}
}

func TestSessionExitStatus(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs /bin/sh")
	}
	a := startAgent(t, nil)
	c := a.client(t, nil)
	s, err := c.Session(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Output("echo hi; exit 3")
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 3 || string(out) != "hi\n" {
		t.Fatalf("Output = %q, %v; want hi and exit status 3", out, err)
	}
}

// TestReconnectAfterCut: the agent's side of the connection is closed abruptly; channels on it end, and the
// next dial transparently reconnects.
func TestReconnectAfterCut(t *testing.T) {
	a := startAgent(t, nil)
	c := a.client(t, nil)
	conn := a.dialEcho(t, c)
	if a.l.cut() != 1 {
		t.Fatal("expected one agent connection")
	}
	select {
	case <-conn.(*Conn).Done():
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after the link died")
	}
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("read after link loss = %v", err)
	}
	expectEcho(t, a.dialEcho(t, c), "again")
	if n := a.l.accepted(); n != 1 {
		t.Fatalf("agent accepted %d connections since the cut, want 1", n)
	}
	if runtime.GOOS == "windows" {
		return
	}
	// Sessions reconnect the same way.
	a.l.cut()
	s, err := c.Session(context.Background())
	if err != nil {
		t.Fatalf("session after cut = %v", err)
	}
	if out, err := s.Output("echo back"); err != nil || string(out) != "back\n" {
		t.Fatalf("session output %q, %v", out, err)
	}
}

// stallProxy forwards unix connections to target until frozen; then it stops moving bytes but keeps the
// connections open (a hung VM).
type stallProxy struct {
	l       net.Listener
	target  string
	frozen  atomic.Bool
	release chan struct{}
	mu      sync.Mutex
	conns   []net.Conn
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	l, err := net.Listen("unix", shortTempDir(t)+"/proxy.sock")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{l: l, target: target, release: make(chan struct{})}
	t.Cleanup(func() {
		close(p.release)
		l.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("unix", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			frozen := p.frozen.Load
			pipe := func(dst, src net.Conn) {
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					if err != nil {
						return
					}
					if frozen() {
						<-p.release // swallow the link: nothing moves any more
						return
					}
					if _, err := dst.Write(buf[:n]); err != nil {
						return
					}
				}
			}
			go pipe(u, c)
			go pipe(c, u)
		}
	}()
	return p
}

// TestKeepAliveDetectsStall: when the link stops moving bytes without closing, keepalives declare it dead
// and the next dial uses a new connection.
func TestKeepAliveDetectsStall(t *testing.T) {
	a := startAgent(t, nil)
	p := newStallProxy(t, a.sock)
	c := a.client(t, func(c *Config) {
		c.Dial = DialUnix(p.l.Addr().String())
		c.KeepAlive = 30 * time.Millisecond
		c.KeepAliveMax = 3
	})
	conn := a.dialEcho(t, c)
	start := time.Now()
	p.frozen.Store(true)
	conn.Write([]byte("x")) // the proxy swallows the link from the next byte on
	select {
	case <-conn.(*Conn).Done():
	case <-time.After(5 * time.Second):
		t.Fatal("stalled link not detected")
	}
	t.Logf("stall detected after %v", time.Since(start))
	p.frozen.Store(false)
	expectEcho(t, a.dialEcho(t, c), "ok")
}

func TestReconnectBackoffAndClose(t *testing.T) {
	dir := shortTempDir(t)
	c, err := New(Config{Dial: DialUnix(dir + "/absent.sock"), Signer: newSigner(t), HostKey: newSigner(t).PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Connect(ctx); err == nil {
		t.Fatal("Connect to a missing socket succeeded")
	}
	// The second attempt waits out the backoff; a short ctx gives up first.
	short, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
	defer cancel()
	if err := c.Connect(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect during backoff = %v", err)
	}
	c.Close()
	if _, err := c.DialTCP(ctx, "127.0.0.1:1"); !errors.Is(err, ErrClosed) {
		t.Fatalf("dial after Close = %v", err)
	}
}

// TestForwardManyConcurrent: 200 connections through Forward and SSH each echo 1 MiB; no errors, no leaks.
func TestForwardManyConcurrent(t *testing.T) {
	const conns, size = 200, 1 << 20
	a := startAgent(t, nil)
	c := a.client(t, nil)
	target := wiretest.Echo(t).String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	l := listenTCP(t)
	fwdDone := make(chan error, 1)
	go func() {
		fwdDone <- Forward(ctx, l, func(ctx context.Context) (net.Conn, error) { return c.DialTCP(ctx, target) })
	}()
	// Warm up (the agent's per-connection goroutines exist after the first channel), then take the baseline
	// once the warm-up connection's goroutines are gone.
	if err := echoCheck(l.Addr().String(), 1000, -1); err != nil {
		t.Fatal(err)
	}
	base := stableGoroutines()

	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- echoCheck(l.Addr().String(), size, i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	settleGoroutines(t, base, 2)
	cancel()
	if err := <-fwdDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("Forward = %v", err)
	}
}

// echoCheck sends size random bytes through addr, half-closes, and checks the echo by sha256.
func echoCheck(addr string, size, i int) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return fmt.Errorf("conn %d: %w", i, err)
	}
	defer conn.Close()
	data := make([]byte, size)
	rand.Read(data)
	want := sha256.Sum256(data)
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(data)
		if err == nil {
			err = conn.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, conn)
	if err != nil {
		return fmt.Errorf("conn %d: read after %d bytes: %w", i, n, err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("conn %d: write: %w", i, err)
	}
	if n != int64(size) || !bytes.Equal(h.Sum(nil), want[:]) {
		return fmt.Errorf("conn %d: echoed %d bytes, sha256 mismatch=%v", i, n, !bytes.Equal(h.Sum(nil), want[:]))
	}
	return nil
}

// TestForwardRelay: Forward with a plain TCP dial keeps half-close and stops with ctx, closing open relays.
func TestForwardRelay(t *testing.T) {
	target := wiretest.Echo(t).String()
	l := listenTCP(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var d net.Dialer
	go func() {
		done <- Forward(ctx, l, func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", target) })
	}()
	for i := range 3 {
		if err := echoCheck(l.Addr().String(), 100000, i); err != nil {
			t.Fatal(err)
		}
	}
	// An idle open connection is closed when Forward stops.
	idle, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.Write([]byte("x"))
	io.ReadFull(idle, make([]byte, 1))
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Forward = %v", err)
	}
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil {
		t.Fatal("relay still open after Forward returned")
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Fatal("listener still open after Forward returned")
	}

	// A listener closed by its owner ends Forward with that error.
	l2 := listenTCP(t)
	go func() { done <- Forward(context.Background(), l2, nil) }()
	l2.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Forward after l.Close = %v", err)
	}
}

// TestForwardKillMidTransfer: the agent's transport dies while a forwarded connection is streaming; that
// connection ends (it does not hang) and new connections through the same Forward work.
func TestForwardKillMidTransfer(t *testing.T) {
	a := startAgent(t, nil)
	c := a.client(t, nil)
	target := wiretest.Echo(t).String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := listenTCP(t)
	go Forward(ctx, l, func(ctx context.Context) (net.Conn, error) { return c.DialTCP(ctx, target) })

	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() { // stream until the connection breaks
		buf := make([]byte, 64<<10)
		for {
			if _, err := conn.Write(buf); err != nil {
				return
			}
		}
	}()
	if _, err := io.ReadFull(conn, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	a.l.cut()
	readDone := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, conn); readDone <- err }()
	select {
	case <-readDone:
	case <-time.After(10 * time.Second):
		t.Fatal("forwarded connection hangs after the link died")
	}
	if err := echoCheck(l.Addr().String(), 1<<20, 0); err != nil {
		t.Fatalf("new connection after the link died: %v", err)
	}
}

// TestServerCloseEndsClientChannels: closing the agent's server ends every channel on the client side.
func TestServerCloseEndsClientChannels(t *testing.T) {
	a := startAgent(t, func(c *sshserver.Config) { c.KeepAlive = -1 })
	conn := a.dialEcho(t, a.client(t, nil))
	a.srv.Close()
	select {
	case <-conn.(*Conn).Done():
	case <-time.After(5 * time.Second):
		t.Fatal("channel still open after the server closed")
	}
}
