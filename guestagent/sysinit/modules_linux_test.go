package sysinit

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestWaitFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "boot.done")
	// Already there.
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WaitFile(t.Context(), p, time.Second); err != nil {
		t.Fatalf("existing file: %v", err)
	}
	// Renamed into place while waiting; another name first must not end the wait.
	p2 := filepath.Join(dir, "later.done")
	errc := make(chan error, 1)
	go func() { errc <- WaitFile(t.Context(), p2, 10*time.Second) }()
	select {
	case err := <-errc:
		t.Fatalf("returned before the file existed: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := os.WriteFile(filepath.Join(dir, "other"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p2+".tmp", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p2+".tmp", p2); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up on rename")
	}
	// Timeout and cancellation.
	if err := WaitFile(t.Context(), filepath.Join(dir, "never"), 20*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("timeout: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(20*time.Millisecond, cancel)
	if err := WaitFile(ctx, filepath.Join(dir, "never"), 10*time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: %v", err)
	}
	if err := WaitFile(t.Context(), filepath.Join(dir, "nodir", "x"), time.Second); err == nil {
		t.Fatal("missing directory: no error")
	}
}

func TestInotifyNames(t *testing.T) {
	ev := func(name string, pad int) []byte {
		b := make([]byte, unix.SizeofInotifyEvent)
		binary.NativeEndian.PutUint32(b[12:], uint32(len(name)+pad))
		return append(append(b, name...), make([]byte, pad)...)
	}
	b := append(ev("boot.done", 7), ev("x", 15)...)
	if got := inotifyNames(b); !slices.Equal(got, []string{"boot.done", "x"}) {
		t.Fatalf("names %q", got)
	}
	if got := inotifyNames(b[:len(b)-3]); !slices.Equal(got, []string{"boot.done"}) {
		t.Fatalf("truncated record: %q", got)
	}
}

func TestUptimeHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(uptimeHandler{slog.NewTextHandler(&buf, nil)}).With("component", "init")
	log.Info("hello")
	if s := buf.String(); !strings.Contains(s, "component=init") || !strings.Contains(s, " uptime=") {
		t.Fatalf("record %q", s)
	}
	if bootClock() <= 0 {
		t.Fatal("no boot clock")
	}
}
