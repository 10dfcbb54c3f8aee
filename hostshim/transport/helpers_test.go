package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/guestagent/sshserver"
	"github.com/berth-dev/berth/guestagent/sshwire/wiretest"
	"golang.org/x/crypto/ssh"
)

func newSigner(t testing.TB) ssh.Signer {
	t.Helper()
	s, _, _, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// shortTempDir returns a directory whose paths fit in sockaddr_un.
func shortTempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "tr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// trackingListener remembers accepted connections so a test can cut them abruptly.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

// cut closes every accepted connection.
func (l *trackingListener) cut() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	n := len(l.conns)
	l.conns = nil
	return n
}

func (l *trackingListener) accepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// agent is a running sshserver with an echo engine socket, as the tests' guest.
type agent struct {
	srv      *sshserver.Server
	l        *trackingListener
	sock     string
	hostKey  ssh.Signer
	userKey  ssh.Signer
	echoSock string
}

func startAgent(t testing.TB, mod func(*sshserver.Config)) *agent {
	t.Helper()
	dir := shortTempDir(t)
	a := &agent{hostKey: newSigner(t), userKey: newSigner(t)}
	a.echoSock = filepath.Join(dir, "engine.sock")
	el, err := net.Listen("unix", a.echoSock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { el.Close() })
	go wiretest.EchoServe(el)
	cfg := sshserver.Config{
		HostKey:        a.hostKey,
		AuthorizedKeys: []ssh.PublicKey{a.userKey.PublicKey()},
		EngineSocket:   a.echoSock,
	}
	if mod != nil {
		mod(&cfg)
	}
	a.srv, err = sshserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.sock = filepath.Join(dir, "ssh.sock")
	l, err := sshserver.ListenUnix(a.sock)
	if err != nil {
		t.Fatal(err)
	}
	a.l = &trackingListener{Listener: l}
	served := make(chan error, 1)
	go func() { served <- a.srv.Serve(a.l) }()
	t.Cleanup(func() {
		a.srv.Close()
		if err := <-served; !errors.Is(err, sshserver.ErrServerClosed) {
			t.Errorf("Serve = %v", err)
		}
	})
	return a
}

// client returns a Client for a; mod may adjust its Config.
func (a *agent) client(t testing.TB, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{Dial: DialUnix(a.sock), Signer: a.userKey, HostKey: a.hostKey.PublicKey()}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialEcho opens a streamlocal channel from c to a's echo socket; it is closed when the test ends.
func (a *agent) dialEcho(t testing.TB, c *Client) net.Conn {
	t.Helper()
	conn, err := c.DialStreamLocal(context.Background(), a.echoSock)
	if err != nil {
		t.Fatalf("dial echo socket: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// expectEcho sends msg on conn and checks that it comes back.
func expectEcho(t testing.TB, conn net.Conn, msg string) {
	t.Helper()
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatalf("write to echo: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo = %q, %v; want %q", buf, err, msg)
	}
}

// listenTCP listens on a free loopback port; the listener is closed when the test ends.
func listenTCP(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// serveConns runs handle on every connection l accepts, each in its own goroutine and closed after it,
// until l is closed.
func serveConns(l net.Listener, handle func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}

// stableGoroutines returns the goroutine count once it has stopped falling for a few polls.
func stableGoroutines() int {
	n, same := runtime.NumGoroutine(), 0
	for same < 5 {
		time.Sleep(10 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m < n {
			n, same = m, 0
			continue
		}
		same++
	}
	return n
}

// settleGoroutines waits until the goroutine count is back to at most base (plus slack).
func settleGoroutines(t *testing.T, base, slack int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base+slack {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d, baseline %d\n%s", n, base, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
