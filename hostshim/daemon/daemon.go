// Package daemon keeps track of berth's long-running host processes (the hostagent, a native agent, a VM
// monitor): pid files that survive pid reuse, detached spawning, and terminate-then-kill.
//
// A pid file holds "PID STARTTIME": STARTTIME identifies the process (on Linux its start time in clock
// ticks from /proc/PID/stat; 0 where the OS offers no cheap equivalent), so a recycled pid never passes for
// the recorded process. A zombie counts as dead.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Errors of this package.
var (
	// ErrNotRunning: the pid file is missing, or names a process that is gone (or a different process).
	ErrNotRunning = errors.New("daemon: not running")
	// ErrStillRunning: the process survived SIGKILL within the wait.
	ErrStillRunning = errors.New("daemon: process did not exit")
)

// Process identifies a running process.
type Process struct {
	// PID is the process id.
	PID int
	// Start is the process's start time (OS-specific units); 0 if unknown.
	Start uint64
}

// Identify returns the identity of the running process pid, or ErrNotRunning.
func Identify(pid int) (Process, error) {
	start, alive := probe(pid)
	if !alive {
		return Process{}, fmt.Errorf("pid %d: %w", pid, ErrNotRunning)
	}
	return Process{PID: pid, Start: start}, nil
}

// Alive reports whether p still runs (same pid, same start time, not a zombie).
func (p Process) Alive() bool {
	if p.PID <= 0 {
		return false
	}
	start, alive := probe(p.PID)
	return alive && (p.Start == 0 || start == p.Start)
}

// WritePIDFile records the running process pid in path (mode 0600, atomically).
func WritePIDFile(path string, pid int) error {
	p, err := Identify(pid)
	if err != nil {
		return fmt.Errorf("write pid file %s: %w", path, err)
	}
	return writeFile(path, []byte(formatPID(p)))
}

func formatPID(p Process) string { return fmt.Sprintf("%d %d\n", p.PID, p.Start) }

// parsePID parses a pid file's content.
func parsePID(b []byte) (Process, error) {
	f := strings.Fields(string(b))
	if len(f) == 0 || len(f) > 2 {
		return Process{}, fmt.Errorf("malformed pid file %q", b)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return Process{}, fmt.Errorf("malformed pid %q", f[0])
	}
	p := Process{PID: pid}
	if len(f) == 2 {
		if p.Start, err = strconv.ParseUint(f[1], 10, 64); err != nil {
			return Process{}, fmt.Errorf("malformed start time %q", f[1])
		}
	}
	return p, nil
}

// ReadPIDFile returns the process recorded in path if it still runs, or an error wrapping ErrNotRunning
// (missing file, dead or recycled pid).
func ReadPIDFile(path string) (Process, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Process{}, fmt.Errorf("pid file %s: %w", path, ErrNotRunning)
	}
	if err != nil {
		return Process{}, fmt.Errorf("read pid file %s: %w", path, err)
	}
	p, err := parsePID(b)
	if err != nil {
		return Process{}, fmt.Errorf("pid file %s: %w (%w)", path, ErrNotRunning, err)
	}
	if !p.Alive() {
		return p, fmt.Errorf("pid file %s: pid %d: %w", path, p.PID, ErrNotRunning)
	}
	return p, nil
}

// Detach makes cmd start in its own session (Unix) or detached process group (Windows), so that it
// outlives the caller and its terminal's signals.
func Detach(cmd *exec.Cmd) { detach(cmd) }

// Terminate asks p to exit (SIGTERM; a kill on Windows), waits up to grace, then kills it and waits up to 5
// more seconds. A process that is already gone is success. ctx bounds the whole wait.
func Terminate(ctx context.Context, p Process, grace time.Duration) error {
	if !p.Alive() {
		return nil
	}
	if err := terminate(p.PID); err != nil && p.Alive() {
		return fmt.Errorf("terminate pid %d: %w", p.PID, err)
	}
	if waitGone(ctx, p, grace) {
		return nil
	}
	if err := kill(p.PID); err != nil && p.Alive() {
		return fmt.Errorf("kill pid %d: %w", p.PID, err)
	}
	if waitGone(ctx, p, 5*time.Second) {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("kill pid %d: %w", p.PID, ctx.Err())
	}
	return fmt.Errorf("kill pid %d: %w", p.PID, ErrStillRunning)
}

// waitGone polls until p is gone, d passes or ctx ends.
func waitGone(ctx context.Context, p Process, d time.Duration) bool {
	deadline := time.Now().Add(d)
	step := time.Millisecond
	for p.Alive() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		t := time.NewTimer(step)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		step = min(step*2, 50*time.Millisecond)
	}
	return true
}

// writeFile writes b to path atomically with mode 0600.
func writeFile(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
