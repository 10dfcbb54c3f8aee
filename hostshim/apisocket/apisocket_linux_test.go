package apisocket

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const dialEnv = "APISOCKET_TEST_DIAL"

// TestMain doubles as the other user's client: with dialEnv set it dials that socket, sends a request and
// prints what came back.
func TestMain(m *testing.M) {
	if path := os.Getenv(dialEnv); path != "" {
		c, err := net.Dial("unix", path)
		if err != nil {
			fmt.Printf("dial: %v\n", err)
			os.Exit(0)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.WriteString(c, "ping")
		_ = c.(*net.UnixConn).CloseWrite()
		b, err := io.ReadAll(c)
		fmt.Printf("read %q %v\n", b, err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Another uid, even with the file mode opened up, is refused by SO_PEERCRED; the owner is served.
func TestOtherUIDRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs a client as uid 65534")
	}
	dir, err := os.MkdirTemp("", "asu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	engine := filepath.Join(dir, "engine.sock")
	echoServer(t, engine)
	path := filepath.Join(dir, "api", "docker.sock")
	l, err := Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = Serve(ctx, l, func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", engine)
		}, nil)
	}()
	// The test binary, runnable by the other user, in a directory it may enter.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "client")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(cred *syscall.Credential) string {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), dialEnv+"="+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("client: %v: %s", err, out)
		}
		t.Logf("client (cred %+v): %s", cred, out)
		return strings.TrimSpace(string(out))
	}
	// With the default modes the file system already keeps the other user out.
	if out := run(&syscall.Credential{Uid: 65534, Gid: 65534}); !strings.Contains(out, "permission denied") {
		t.Fatalf("other uid through 0700/0600: %s", out)
	}
	// Open the modes: now only the peer credential check stands in the way.
	for p, m := range map[string]os.FileMode{filepath.Dir(path): 0o755, path: 0o666} {
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
	}
	if out := run(&syscall.Credential{Uid: 65534, Gid: 65534}); out != `read "" <nil>` && !strings.Contains(out, "reset") {
		t.Fatalf("other uid with open modes: %s", out)
	}
	if out := run(nil); out != `read "ping" <nil>` {
		t.Fatalf("owner: %s", out)
	}
}
