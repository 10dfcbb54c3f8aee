package container

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/berth-dev/berth/guestagent/runtime/shim"
)

// execLauncher starts shims by re-executing the agent binary.
type execLauncher struct {
	binary string
	log    *slog.Logger
}

// Launch starts `binary shim dir` in its own session, detached from the
// agent (no parent-death signal: it outlives an agent restart), and waits for
// its start-up report.
func (l *execLauncher) Launch(ctx context.Context, dir string) (int, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("launch shim: %w", err)
	}
	defer r.Close()
	logPath := filepath.Join(dir, shim.LogFile)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		w.Close()
		return 0, fmt.Errorf("launch shim: %w", err)
	}
	cmd := exec.Command(l.binary, shim.Arg, dir)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	logf.Close()
	if err != nil {
		return 0, fmt.Errorf("launch shim: %w", err)
	}
	// Reap the shim when it ends, while this agent lives; after an agent
	// restart the shim's new parent does.
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()

	type result struct {
		ready shim.Ready
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		var rd shim.Ready
		err := shim.ReadLine(bufio.NewReader(r), &rd)
		ch <- result{rd, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			<-exited
			return 0, fmt.Errorf("shim exited before reporting (%s): %s", cmd.ProcessState, lastLine(logPath))
		}
		if res.ready.Error != "" {
			return 0, errors.New(res.ready.Error)
		}
		return res.ready.Pid, nil
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		return 0, fmt.Errorf("launch shim: %w", ctx.Err())
	}
}

// lastLine returns the last non-empty line of the file at path.
func lastLine(path string) string {
	b, _ := os.ReadFile(path)
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return string(lines[len(lines)-1])
}
