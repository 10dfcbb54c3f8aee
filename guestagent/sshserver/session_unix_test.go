//go:build unix

package sshserver

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// newSession opens a session channel on c; it is closed when the test ends.
func newSession(t *testing.T, c *ssh.Client) *ssh.Session {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSessionExec(t *testing.T) {
	f := startServer(t, nil)
	c := f.client(t)
	s := newSession(t, c)
	s.Stdin = strings.NewReader("from stdin")
	if err := s.Setenv("BERTH_X", "42"); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	err := s.Run(`cat; echo " $BERTH_X"; echo oops >&2; exit 7`)
	var ee *ssh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 7 {
		t.Fatalf("Run = %v, want exit status 7", err)
	}
	if out.String() != "from stdin 42\n" || errb.String() != "oops\n" {
		t.Fatalf("stdout %q stderr %q", out.String(), errb.String())
	}

	s = newSession(t, c)
	if err := s.Run("true"); err != nil {
		t.Fatalf("Run(true) = %v", err)
	}

	// Killed by a signal: exit-signal.
	s = newSession(t, c)
	err = s.Run("kill -TERM $$")
	if !errors.As(err, &ee) || ee.Signal() != "TERM" {
		t.Fatalf("Run(kill) = %v, want signal TERM", err)
	}
}

func TestSessionPTY(t *testing.T) {
	f := startServer(t, nil)
	c := f.client(t)
	s := newSession(t, c)
	if err := s.RequestPty("xterm", 40, 100, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	s.Stdout = &out
	if err := s.Run(`stty size; echo "$TERM"; test -t 0`); err != nil {
		t.Fatalf("Run = %v (output %q)", err, out.String())
	}
	if got := strings.ReplaceAll(out.String(), "\r", ""); got != "40 100\nxterm\n" {
		t.Fatalf("pty output %q", got)
	}
}

func TestSessionSignal(t *testing.T) {
	f := startServer(t, nil)
	c := f.client(t)
	s := newSession(t, c)
	stdout, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("echo ready; exec sleep 30"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(stdout, buf); err != nil {
		t.Fatal(err)
	}
	if err := s.Signal(ssh.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var ee *ssh.ExitError
	if err := s.Wait(); !errors.As(err, &ee) || ee.Signal() != "KILL" {
		t.Fatalf("Wait = %v, want signal KILL", err)
	}
}

// TestSessionKilledOnDisconnect: a process whose client goes away is killed and reaped, and the server's
// goroutines return to their baseline.
func TestSessionKilledOnDisconnect(t *testing.T) {
	f := startServer(t, nil)
	base := runtime.NumGoroutine()
	c := f.client(t)
	s := newSession(t, c)
	out, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("echo $$; exec sleep 60"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d still alive after its client disconnected", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("kill(%d, 0) = %v", pid, err)
	}
	for n := runtime.NumGoroutine(); n > base; n = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines %d, baseline %d", n, base)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSessionWindowChange(t *testing.T) {
	f := startServer(t, nil)
	c := f.client(t)
	s := newSession(t, c)
	if err := s.RequestPty("vt100", 24, 80, ssh.TerminalModes{ssh.ECHO: 0}); err != nil {
		t.Fatal(err)
	}
	in, err := s.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// The shell waits for a line, then prints the size it sees.
	if err := s.Start(`read x; stty size`); err != nil {
		t.Fatal(err)
	}
	if err := s.WindowChange(50, 132); err != nil {
		t.Fatal(err)
	}
	// window-change has no reply: an env request round trip orders it before the line we send.
	if _, err := s.SendRequest("env", true, ssh.Marshal(envRequest{Name: "X", Value: "1"})); err != nil {
		t.Fatal(err)
	}
	in.Write([]byte("go\n"))
	r := bufio.NewReader(out)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("no size line: %v", err)
		}
		if strings.TrimSpace(line) == "50 132" {
			return
		}
		if strings.Contains(line, " ") && !strings.Contains(line, "go") {
			t.Fatalf("size after window-change = %q", line)
		}
	}
}
