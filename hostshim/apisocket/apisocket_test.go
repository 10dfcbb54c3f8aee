package apisocket

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/guestagent/sshwire/wiretest"
)

// shortDir is a temporary directory with a path short enough for unix sockets.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "as")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestListen(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes")
	}
	dir := filepath.Join(shortDir(t), "inst")
	path := filepath.Join(dir, "docker.sock")
	l, err := Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, path: 0o600 | os.ModeSocket} {
		st, err := os.Stat(p)
		if err != nil || st.Mode()&(os.ModeType|os.ModePerm) != want {
			t.Errorf("%s: %v %v, want %v", p, st.Mode(), err, want)
		}
	}
	// A live socket is not taken over.
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := Listen(path, nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen: %v", err)
	}
	l.Close()
	// A stale one is replaced (net.UnixListener.Close removed it; leave one behind on purpose).
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close()
	l2, err := Listen(path, nil)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l2.Close()
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, nil); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over a file: %v", err)
	}
	if _, err := Listen("/"+strings.Repeat("x", 120), nil); !errors.Is(err, ErrPathTooLong) {
		t.Fatalf("long path: %v", err)
	}
}

// echoServer accepts on a unix socket and echoes until EOF (wiretest.EchoServe).
func echoServer(t *testing.T, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go wiretest.EchoServe(l)
}

// Serve relays with half-close: the client's EOF reaches the engine, whose reply still comes back.
func TestServeRelay(t *testing.T) {
	dir := shortDir(t)
	engine := filepath.Join(dir, "engine.sock")
	echoServer(t, engine)
	l, err := Listen(filepath.Join(dir, "docker.sock"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, l, func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", engine)
		}, nil)
	}()
	c, err := net.Dial("unix", filepath.Join(dir, "docker.sock"))
	if err != nil {
		t.Fatal(err)
	}
	msg := strings.Repeat("ping", 1<<16)
	go func() {
		_, _ = io.WriteString(c, msg)
		_ = c.(*net.UnixConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	c.Close()
	if err != nil || string(got) != msg {
		t.Fatalf("echo through the socket: %d bytes, %v", len(got), err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve: %v", err)
	}
}

// A peer the filter refuses is closed before anything is relayed.
func TestFilterRefuses(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skip("no peer credentials on this OS")
	}
	dir := shortDir(t)
	path := filepath.Join(dir, "s.sock")
	raw, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var seen []int
	l := FilterPeers(raw, func(uid int) bool { seen = append(seen, uid); return len(seen) > 1 }, nil)
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	refused, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer refused.Close()
	_ = refused.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := refused.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("refused connection: read %d, %v (want EOF or reset)", n, err)
	}
	ok, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ok.Close()
	c := <-accepted
	c.Close()
	if len(seen) != 2 || seen[0] != os.Getuid() {
		t.Fatalf("peer uids seen: %v, want our uid %d twice", seen, os.Getuid())
	}
}
