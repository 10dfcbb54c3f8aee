package daemon

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func TestPIDFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.pid")
	if _, err := ReadPIDFile(path); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("missing: %v", err)
	}
	if err := WritePIDFile(path, os.Getpid()); err != nil {
		t.Fatal(err)
	}
	p, err := ReadPIDFile(path)
	if err != nil || p.PID != os.Getpid() {
		t.Fatalf("read: %+v %v", p, err)
	}
	// A different start time is a recycled pid.
	if runtime.GOOS == "linux" {
		if err := os.WriteFile(path, []byte(formatPID(Process{PID: p.PID, Start: p.Start + 1})), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadPIDFile(path); !errors.Is(err, ErrNotRunning) {
			t.Fatalf("recycled pid: %v", err)
		}
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPIDFile(path); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("garbage: %v", err)
	}
}

func TestParsePID(t *testing.T) {
	for in, want := range map[string]Process{"12 345\n": {12, 345}, "7": {7, 0}} {
		if got, err := parsePID([]byte(in)); err != nil || got != want {
			t.Errorf("%q: %+v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "x", "-1 2", "1 2 3", "1 x"} {
		if _, err := parsePID([]byte(in)); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
}

func TestTerminate(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("uses sleep(1)")
	}
	cmd := exec.Command("sleep", "60")
	Detach(cmd)
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep binary:", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p, err := Identify(cmd.Process.Pid)
	if err != nil || !p.Alive() {
		t.Fatalf("identify: %+v %v", p, err)
	}
	if err := Terminate(context.Background(), p, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	<-done
	if p.Alive() {
		t.Fatal("alive after Terminate")
	}
	if err := Terminate(context.Background(), p, time.Second); err != nil {
		t.Fatalf("terminate a dead process: %v", err)
	}
}
