//go:build unix

package sshserver

import (
	"bytes"
	"errors"
	"io"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/guestagent/sshwire"
	"github.com/berth-dev/berth/guestagent/sshwire/wiretest"
)

// startHandoff serves handoffs for f's server on a socket next to its SSH socket and returns the path.
func startHandoff(t *testing.T, f *fixture) string {
	t.Helper()
	p := filepath.Join(filepath.Dir(f.sock), "handoff.sock")
	l, err := ListenUnix(p)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.srv.ServeHandoff(l) }()
	t.Cleanup(func() {
		f.srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("ServeHandoff = %v, want ErrServerClosed", err)
		}
	})
	return p
}

// handoffSetup is a server serving handoffs, its token and an echo target.
type handoffSetup struct {
	f      *fixture
	sock   string // the handoff socket
	tok    []byte
	target string // a TCP echo server
}

func newHandoffSetup(t *testing.T) handoffSetup {
	t.Helper()
	f := startServer(t, nil)
	sock := startHandoff(t, f)
	tok, _ := token(t, f)
	echo := listenTCP(t)
	go wiretest.EchoServe(echo)
	return handoffSetup{f: f, sock: sock, tok: tok, target: echo.Addr().String()}
}

// token asks f's server for the handoff token over an authenticated SSH connection.
func token(t *testing.T, f *fixture) ([]byte, bool) {
	t.Helper()
	ok, tok, err := f.client(t).SendRequest(sshwire.RequestHandoffToken, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok, ok
}

// tcpPair returns both ends of a loopback TCP connection: the accepted one (what the host hands off) and
// the dialling one (the user's client).
func tcpPair(t *testing.T) (accepted, client *net.TCPConn) {
	t.Helper()
	l := listenTCP(t)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); c.Close() })
	return a.(*net.TCPConn), c.(*net.TCPConn)
}

// fdOf returns a duplicate of c's descriptor, for sendHandoff (which closes it).
func fdOf(t *testing.T, c syscall.Conn) int {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd int
	var derr error
	if err := raw.Control(func(f uintptr) { fd, derr = syscall.Dup(int(f)) }); err != nil || derr != nil {
		t.Fatal(err, derr)
	}
	return fd
}

// sendHandoff sends msg with fds attached to the handoff socket, closes fds (as the host closes its copy)
// and returns the reply.
func sendHandoff(t *testing.T, sock string, msg []byte, fds ...int) []byte {
	t.Helper()
	defer func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var oob []byte
	if len(fds) > 0 {
		oob = syscall.UnixRights(fds...)
	}
	if _, _, err := c.(*net.UnixConn).WriteMsgUnix(msg, oob, nil); err != nil {
		t.Fatal(err)
	}
	reply, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return reply
}

func handoffMsg(t *testing.T, tok []byte, addr string) []byte {
	t.Helper()
	b, err := sshwire.MarshalHandoff(sshwire.Handoff{Token: tok, Network: "tcp", Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandoffTokenOnlyWhenServing(t *testing.T) {
	f := startServer(t, nil)
	if tok, ok := token(t, f); ok || len(tok) != 0 {
		t.Fatalf("token before ServeHandoff: %v %x", ok, tok)
	}
	startHandoff(t, f)
	tok, ok := token(t, f)
	if !ok || len(tok) != sshwire.HandoffTokenLen {
		t.Fatalf("token = %v %x", ok, tok)
	}
	if tok2, _ := token(t, f); !bytes.Equal(tok, tok2) {
		t.Fatal("the token changed between two SSH connections to the same server")
	}
}

// TestHandoffRelays: a handed-off connection reaches the target, keeps half-close, and no longer needs
// the host's copy of the socket.
func TestHandoffRelays(t *testing.T) {
	h := newHandoffSetup(t)
	accepted, client := tcpPair(t)
	reply := sendHandoff(t, h.sock, handoffMsg(t, h.tok, h.target), fdOf(t, accepted))
	if err := sshwire.ParseHandoffReply(reply); err != nil {
		t.Fatalf("handoff: %v", err)
	}
	accepted.Close() // the host's copy: the agent has its own now
	expectEcho(t, client, "through the agent")
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	go func() {
		_, _ = client.Write(big)
		_ = client.CloseWrite()
	}()
	got, err := io.ReadAll(client)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("1 MiB echo after half-close: %d bytes, %v", len(got), err)
	}
}

func TestHandoffRefusals(t *testing.T) {
	h := newHandoffSetup(t)
	sock, tok, target := h.sock, h.tok, h.target
	wrong := bytes.Repeat([]byte{1}, sshwire.HandoffTokenLen)

	cases := []struct {
		name string
		msg  func() []byte
		fds  func(accepted *net.TCPConn) []int
		want error
	}{
		{"wrong token", func() []byte { return handoffMsg(t, wrong, target) }, func(a *net.TCPConn) []int { return []int{fdOf(t, a)} }, sshwire.ErrHandoffRefused},
		{"no descriptor", func() []byte { return handoffMsg(t, tok, target) }, func(*net.TCPConn) []int { return nil }, sshwire.ErrHandoffRefused},
		{"two descriptors", func() []byte { return handoffMsg(t, tok, target) }, func(a *net.TCPConn) []int { return []int{fdOf(t, a), fdOf(t, a)} }, sshwire.ErrHandoffRefused},
		{"garbage", func() []byte { return []byte("hello") }, func(a *net.TCPConn) []int { return []int{fdOf(t, a)} }, sshwire.ErrHandoffRefused},
		{"not a TCP socket", func() []byte { return handoffMsg(t, tok, target) }, func(*net.TCPConn) []int {
			ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(shortTempDir(t), "u"), Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ul.Close() })
			return []int{fdOf(t, ul)}
		}, sshwire.ErrHandoffRefused},
		{"unreachable target", func() []byte { return handoffMsg(t, tok, closedPort(t)) }, func(a *net.TCPConn) []int { return []int{fdOf(t, a)} }, sshwire.ErrHandoffDial},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			accepted, client := tcpPair(t)
			err := sshwire.ParseHandoffReply(sendHandoff(t, sock, tc.msg(), tc.fds(accepted)...))
			if !errors.Is(err, tc.want) {
				t.Fatalf("reply = %v, want %v", err, tc.want)
			}
			// Refused: the connection is still (only) the host's, and nothing else reads or writes it.
			if _, err := accepted.Write([]byte("still mine")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 10)
			_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "still mine" {
				t.Fatalf("after the refusal: %q, %v", buf, err)
			}
		})
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestHandoffCloseAbortsRelays: Close ends handed-off relays (the client sees its connection end).
func TestHandoffCloseAbortsRelays(t *testing.T) {
	h := newHandoffSetup(t)
	accepted, client := tcpPair(t)
	if err := sshwire.ParseHandoffReply(sendHandoff(t, h.sock, handoffMsg(t, h.tok, h.target), fdOf(t, accepted))); err != nil {
		t.Fatal(err)
	}
	accepted.Close()
	expectEcho(t, client, "x")
	h.f.srv.Close()
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Fatal("the relay survived Close")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the relay survived Close (read timed out)")
	}
}
