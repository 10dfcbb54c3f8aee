package sshserver

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/guestagent/sshwire"
	"github.com/berth-dev/berth/guestagent/sshwire/wiretest"
	"github.com/mdlayher/vsock"
	"golang.org/x/crypto/ssh"
)

func newSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// shortTempDir returns a directory whose paths fit in sockaddr_un.
func shortTempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "ssh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

type fixture struct {
	srv      *Server
	sock     string
	hostKey  ssh.Signer
	userKey  ssh.Signer
	served   chan error
	echoSock string
}

// startServer runs a Server on a unix socket with an echo unix socket as its engine socket; mod may adjust
// the Config.
func startServer(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	dir := shortTempDir(t)
	f := &fixture{hostKey: newSigner(t), userKey: newSigner(t), served: make(chan error, 1)}
	f.echoSock = filepath.Join(dir, "engine.sock")
	el, err := net.Listen("unix", f.echoSock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { el.Close() })
	go wiretest.EchoServe(el)
	cfg := Config{
		HostKey:        f.hostKey,
		AuthorizedKeys: []ssh.PublicKey{f.userKey.PublicKey()},
		EngineSocket:   f.echoSock,
	}
	if mod != nil {
		mod(&cfg)
	}
	f.srv, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.sock = filepath.Join(dir, "agent", "ssh.sock")
	l, err := ListenUnix(f.sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() { f.served <- f.srv.Serve(l) }()
	t.Cleanup(func() {
		f.srv.Close()
		if err := <-f.served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	return f
}

func (f *fixture) dial(t *testing.T, key ssh.Signer) (*ssh.Client, error) {
	t.Helper()
	return ssh.Dial("unix", f.sock, &ssh.ClientConfig{
		User:            "berth",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: ssh.FixedHostKey(f.hostKey.PublicKey()),
		Timeout:         5 * time.Second,
	})
}

func (f *fixture) client(t *testing.T) *ssh.Client {
	t.Helper()
	c, err := f.dial(t, f.userKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// listenTCP listens on a free loopback port; the listener is closed when the test ends.
func listenTCP(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// rejectReason is the reason the server gave for refusing a channel, or 0 if err is no refusal.
func rejectReason(err error) ssh.RejectionReason {
	var oce *ssh.OpenChannelError
	if errors.As(err, &oce) {
		return oce.Reason
	}
	return 0
}

// expectEcho sends msg on conn and checks that it comes back.
func expectEcho(t *testing.T, conn net.Conn, msg string) {
	t.Helper()
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatalf("write to echo: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo = %q, %v; want %q", buf, err, msg)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New(empty) = %v, want ErrInvalidConfig", err)
	}
	if _, err := New(Config{HostKey: newSigner(t)}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New(no keys) = %v, want ErrInvalidConfig", err)
	}
}

func TestAuthorizedKey(t *testing.T) {
	a, b := newSigner(t).PublicKey().Marshal(), newSigner(t).PublicKey().Marshal()
	if !authorizedKey([][]byte{a, b}, b) || authorizedKey([][]byte{a}, b) || authorizedKey(nil, a) {
		t.Fatal("authorizedKey gives wrong answers")
	}
}

func TestWrongClientKeyRefused(t *testing.T) {
	f := startServer(t, nil)
	if _, err := f.dial(t, newSigner(t)); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("dial with a foreign key = %v, want authentication failure", err)
	}
	// Password auth is not offered at all.
	_, err := ssh.Dial("unix", f.sock, &ssh.ClientConfig{
		User: "berth", Auth: []ssh.AuthMethod{ssh.Password("x")},
		HostKeyCallback: ssh.FixedHostKey(f.hostKey.PublicKey()),
	})
	if err == nil || !strings.Contains(err.Error(), "no supported methods remain") {
		t.Fatalf("password dial = %v", err)
	}
	f.client(t) // the right key works
}

func TestStreamLocal(t *testing.T) {
	f := startServer(t, nil)
	c := f.client(t)
	conn, err := c.Dial("unix", f.echoSock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	expectEcho(t, conn, "ping")

	other := filepath.Join(filepath.Dir(f.echoSock), "other.sock")
	ol, err := net.Listen("unix", other)
	if err != nil {
		t.Fatal(err)
	}
	defer ol.Close()
	for _, p := range []string{other, "/run/docker.sock", f.echoSock + "/../" + filepath.Base(other)} {
		if _, err := c.Dial("unix", p); rejectReason(err) != ssh.Prohibited {
			t.Errorf("streamlocal to %s = %v, want Prohibited", p, err)
		}
	}
}

func TestDirectTCPIP(t *testing.T) {
	f := startServer(t, nil)
	c := f.client(t)
	l := listenTCP(t)
	go wiretest.EchoServe(l)
	conn, err := c.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg := bytes.Repeat([]byte("0123456789"), 100000)
	go func() { _, _ = conn.Write(msg) }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo of 1 MB: %v equal=%v", err, bytes.Equal(got, msg))
	}

	// A closed port is refused with ConnectionFailed.
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := closed.Addr().String()
	closed.Close()
	if _, err := c.Dial("tcp", addr); rejectReason(err) != ssh.ConnectionFailed {
		t.Fatalf("dial closed port = %v, want ConnectionFailed", err)
	}
}

// TestHalfClose: the client's EOF reaches the target as EOF while the target's answer still flows back.
func TestHalfClose(t *testing.T) {
	f := startServer(t, nil)
	c := f.client(t)
	l := listenTCP(t)
	// The target reads everything to EOF, then answers with the byte count and closes.
	go func() {
		tc, err := l.Accept()
		if err != nil {
			return
		}
		defer tc.Close()
		n, _ := io.Copy(io.Discard, tc)
		_, _ = tc.Write([]byte(strconv.FormatInt(n, 10)))
	}()
	conn, err := c.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(make([]byte, 12345)); err != nil {
		t.Fatal(err)
	}
	if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != "12345" {
		t.Fatalf("answer after half-close = %q, %v", got, err)
	}
}

func TestUnknownChannelRejected(t *testing.T) {
	f := startServer(t, nil)
	c := f.client(t)
	if _, _, err := c.OpenChannel("x-unknown@example.com", nil); rejectReason(err) != ssh.UnknownChannelType {
		t.Fatalf("open unknown = %v", err)
	}
}

func TestKeepAliveAnswered(t *testing.T) {
	f := startServer(t, nil)
	c := f.client(t)
	ok, _, err := c.SendRequest(RequestKeepAlive, true, nil)
	if err != nil || !ok {
		t.Fatalf("keepalive = %v, %v", ok, err)
	}
}

// TestServerKeepAliveDropsDeadPeer: a client that never answers (its connection is never read) is dropped.
func TestServerKeepAliveDropsDeadPeer(t *testing.T) {
	f := startServer(t, func(c *Config) { c.KeepAlive = 20 * time.Millisecond; c.KeepAliveMax = 2 })
	conn, err := net.Dial("unix", f.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cc, chans, reqs, err := ssh.NewClientConn(conn, "", &ssh.ClientConfig{
		User: "berth", Auth: []ssh.AuthMethod{ssh.PublicKeys(f.userKey)},
		HostKeyCallback: ssh.FixedHostKey(f.hostKey.PublicKey()),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	go func() {
		for nc := range chans {
			_ = nc.Reject(ssh.Prohibited, "")
		}
	}()
	// Never reply to the server's global requests: the server must give up and close.
	held := make(chan struct{})
	go func() {
		for r := range reqs {
			_ = r // no reply
		}
		close(held)
	}()
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("server did not drop a peer that misses keepalives")
	}
}

func TestUDP(t *testing.T) {
	f := startServer(t, func(c *Config) { c.UDPIdleTimeout = 200 * time.Millisecond })
	c := f.client(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 65536)
		for {
			n, a, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(append([]byte("re:"), buf[:n]...), a)
		}
	}()
	port := pc.LocalAddr().(*net.UDPAddr).Port
	ch, reqs, err := c.OpenChannel(ChannelUDP, ssh.Marshal(sshwire.UDPOpen{Host: "127.0.0.1", Port: uint32(port)}))
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	defer ch.Close()
	for _, msg := range []string{"a", "hello", strings.Repeat("x", 60000)} {
		if _, err := ch.Write(sshwire.AppendDatagram(nil, []byte(msg))); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, sshwire.MaxDatagram)
		n, err := sshwire.ReadDatagram(ch, buf)
		if err != nil || string(buf[:n]) != "re:"+msg {
			t.Fatalf("datagram %.10q: got %.10q, %v", msg, buf[:n], err)
		}
	}
	// Idle: the server closes the channel by itself.
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, ch); done <- err }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("idle UDP channel not closed")
	}
}

func TestShutdown(t *testing.T) {
	f := startServer(t, nil)
	c := f.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	// An open SSH connection does not end by itself: Shutdown closes it when ctx ends.
	if err := f.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v", err)
	}
	if err := c.Wait(); err == nil {
		t.Log("client connection ended cleanly")
	}
	if _, err := net.Dial("unix", f.sock); err == nil {
		t.Fatal("listener still accepting after Shutdown")
	}
	if err := f.srv.Serve(&net.UnixListener{}); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown = %v", err)
	}
}

func TestShutdownIdle(t *testing.T) {
	f := startServer(t, nil)
	c := f.client(t)
	c.Close()
	// With no connection left, Shutdown returns as soon as the server has noticed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	a, b := net.Pipe()
	defer b.Close()
	if err := f.srv.ServeConn(a); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ServeConn after Shutdown = %v", err)
	}
}

func TestServeConn(t *testing.T) {
	f := startServer(t, nil)
	a, b := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- f.srv.ServeConn(a) }()
	// net.Pipe is unbuffered and both ends send their version line first: buffer the client side.
	cc, chans, reqs, err := ssh.NewClientConn(sshwire.NewBufConn(b), "", &ssh.ClientConfig{
		User: "berth", Auth: []ssh.AuthMethod{ssh.PublicKeys(f.userKey)},
		HostKeyCallback: ssh.FixedHostKey(f.hostKey.PublicKey()),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := ssh.NewClient(cc, chans, reqs)
	conn, err := c.Dial("unix", f.echoSock)
	if err != nil {
		t.Fatal(err)
	}
	expectEcho(t, conn, "pipe")
	c.Close()
	if err := <-done; err != nil {
		t.Fatalf("ServeConn = %v", err)
	}
}

func TestListenUnixModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("unix modes")
	}
	dir := filepath.Join(shortTempDir(t), "d")
	p := filepath.Join(dir, "s.sock")
	l, err := ListenUnix(p)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	for path, want := range map[string]os.FileMode{dir: 0o700} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s mode %v, %v; want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	// A stale socket file is replaced; the mode of a live one is 0600.
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenUnix(p); err == nil {
		t.Fatal("ListenUnix replaced a regular file")
	}
	os.Remove(p)
	stale, _ := net.Listen("unix", p)
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	l, err = ListenUnix(p)
	if err != nil {
		t.Fatalf("ListenUnix over a stale socket: %v", err)
	}
	defer l.Close()
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v", fi.Mode().Perm(), err)
	}
}

// fakeVsockListener hands out connections with the given peer CIDs.
type fakeVsockListener struct {
	net.Listener
	cids  []uint32
	conns []fakeConn
}

type fakeConn struct {
	net.Conn
	raddr  net.Addr
	closed *bool
}

func (c fakeConn) RemoteAddr() net.Addr { return c.raddr }
func (c fakeConn) Close() error         { *c.closed = true; return nil }

func (l *fakeVsockListener) Accept() (net.Conn, error) {
	if len(l.cids) == 0 {
		return nil, net.ErrClosed
	}
	cid := l.cids[0]
	l.cids = l.cids[1:]
	c := fakeConn{raddr: &vsock.Addr{ContextID: cid, Port: 1234}, closed: new(bool)}
	l.conns = append(l.conns, c)
	return c, nil
}

func TestCIDFilter(t *testing.T) {
	fl := &fakeVsockListener{cids: []uint32{3, 42, HostCID, 1, HostCID}}
	l := &cidFilter{Listener: fl, allow: HostCID}
	for range 2 {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if cid := c.RemoteAddr().(*vsock.Addr).ContextID; cid != HostCID {
			t.Fatalf("accepted CID %d", cid)
		}
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept at end = %v", err)
	}
	for _, c := range fl.conns {
		cid := c.raddr.(*vsock.Addr).ContextID
		if *c.closed != (cid != HostCID) {
			t.Errorf("conn from CID %d closed=%v", cid, *c.closed)
		}
	}
}

func TestListenVsockUnsupported(t *testing.T) {
	if runtime.GOOS == "linux" {
		t.Skip("linux has AF_VSOCK")
	}
	if _, err := ListenVsock(1024); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("ListenVsock = %v", err)
	}
}
