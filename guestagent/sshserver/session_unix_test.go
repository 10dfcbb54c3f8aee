//go:build unix

package sshserver

import (
	"bufio"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestSessionKilledOnDisconnect: a process whose client goes away is killed and reaped, and the server's
// goroutines return to their baseline.
func TestSessionKilledOnDisconnect(t *testing.T) {
	f := startServer(t, nil)
	base := runtime.NumGoroutine()
	c := f.client(t)
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
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
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
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
