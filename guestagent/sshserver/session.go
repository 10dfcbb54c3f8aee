package sshserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/crypto/ssh"
)

// maxSessionEnv caps the "env" requests accepted per session.
const maxSessionEnv = 256

// ptyDrainTimeout bounds the wait for a pty's last output after the process exits (a background child may
// hold the terminal open).
const ptyDrainTimeout = time.Second

// signals maps RFC 4254 signal names to signals.
var signals = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "FPE": syscall.SIGFPE, "HUP": syscall.SIGHUP,
	"ILL": syscall.SIGILL, "INT": syscall.SIGINT, "KILL": syscall.SIGKILL, "PIPE": syscall.SIGPIPE,
	"QUIT": syscall.SIGQUIT, "SEGV": syscall.SIGSEGV, "TERM": syscall.SIGTERM,
}

// signalName is the RFC 4254 name of sig, or "" if it has none.
func signalName(sig syscall.Signal) string {
	for n, s := range signals {
		if s == sig {
			return n
		}
	}
	return ""
}

// session is one "session" channel: requests configure it until "shell" or "exec" starts the process.
type session struct {
	srv *Server
	ch  ssh.Channel
	log *slog.Logger
	env []string
	pty *ptyRequest

	mu      sync.Mutex
	cmd     *exec.Cmd
	ptmx    *os.File
	exited  bool
	done    chan struct{} // closed once the process is reaped and its exit reported
	workers sync.WaitGroup
}

func (s *Server) session(nc ssh.NewChannel, log *slog.Logger) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	ss := &session{srv: s, ch: ch, log: log}
	stop := context.AfterFunc(s.ctx, func() {
		ss.kill()
		ch.Close()
	})
	defer stop()
	for r := range reqs {
		ok, then := ss.request(r)
		if r.WantReply {
			_ = r.Reply(ok, nil)
		}
		if then != nil {
			then()
		}
	}
	// The channel is closed: after the exit was reported, by the peer, or with the connection.
	ss.kill()
	if ss.done != nil {
		<-ss.done
	}
	ch.Close()
	ss.workers.Wait()
}

// request handles one channel request and returns whether it succeeded and what to run after the reply.
func (ss *session) request(r *ssh.Request) (bool, func()) {
	switch r.Type {
	case "env":
		var m envRequest
		if ssh.Unmarshal(r.Payload, &m) != nil || m.Name == "" || len(ss.env) >= maxSessionEnv {
			return false, nil
		}
		ss.env = append(ss.env, m.Name+"="+m.Value)
		return true, nil
	case "pty-req":
		var m ptyRequest
		if ssh.Unmarshal(r.Payload, &m) != nil || ss.started() {
			return false, nil
		}
		ss.pty = &m
		return true, nil
	case "window-change":
		var m windowChange
		if ssh.Unmarshal(r.Payload, &m) != nil {
			return false, nil
		}
		ss.mu.Lock()
		defer ss.mu.Unlock()
		if ss.ptmx == nil {
			return false, nil
		}
		return pty.Setsize(ss.ptmx, winsize(m.Columns, m.Rows, m.Width, m.Height)) == nil, nil
	case "signal":
		var m signalRequest
		if ssh.Unmarshal(r.Payload, &m) != nil {
			return false, nil
		}
		sig, ok := signals[m.Signal]
		if !ok {
			return false, nil
		}
		ss.mu.Lock()
		defer ss.mu.Unlock()
		if ss.cmd == nil || ss.exited {
			return false, nil
		}
		return ss.cmd.Process.Signal(sig) == nil, nil
	case "shell", "exec":
		argv := slices.Clone(ss.srv.cfg.Shell)
		if r.Type == "exec" {
			var m execRequest
			if ssh.Unmarshal(r.Payload, &m) != nil {
				return false, nil
			}
			argv = append(argv, "-c", m.Command)
		}
		if ss.started() {
			return false, nil
		}
		if err := ss.start(argv); err != nil {
			ss.log.Info("session start failed", "argv", argv, "err", err)
			return false, nil
		}
		// Reap only after the reply: the exit report and the channel close must follow it.
		return true, ss.wait
	default:
		return false, nil
	}
}

func (ss *session) started() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.cmd != nil
}

func winsize(cols, rows, width, height uint32) *pty.Winsize {
	return &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows), X: uint16(width), Y: uint16(height)}
}

// start starts argv with the session's pty or with pipes to the channel.
func (ss *session) start(argv []string) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	env := ss.srv.cfg.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(slices.Clone(env), ss.env...)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.pty != nil {
		cmd.Env = append(cmd.Env, "TERM="+ss.pty.Term)
		ptmx, err := pty.StartWithSize(cmd, winsize(ss.pty.Columns, ss.pty.Rows, ss.pty.Width, ss.pty.Height))
		if err != nil {
			return fmt.Errorf("start %s with pty: %w", argv[0], err)
		}
		ss.ptmx = ptmx
		ss.workers.Add(1)
		go func() {
			defer ss.workers.Done()
			_, _ = io.Copy(ptmx, ss.ch) // ends when the channel or the pty closes
		}()
	} else {
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return fmt.Errorf("start %s: %w", argv[0], err)
		}
		cmd.Stdout = ss.ch
		cmd.Stderr = ss.ch.Stderr()
		cmd.WaitDelay = ptyDrainTimeout
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", argv[0], err)
		}
		ss.workers.Add(1)
		go func() {
			defer ss.workers.Done()
			_, _ = io.Copy(stdin, ss.ch)
			stdin.Close() // the client's EOF becomes the process's EOF
		}()
	}
	ss.cmd = cmd
	ss.done = make(chan struct{})
	return nil
}

// wait reaps the process in the background, reports its exit and closes the channel.
func (ss *session) wait() {
	ss.mu.Lock()
	cmd, ptmx, done := ss.cmd, ss.ptmx, ss.done
	ss.mu.Unlock()
	go func() {
		defer close(done)
		var out chan struct{}
		if ptmx != nil {
			out = make(chan struct{})
			go func() {
				defer close(out)
				_, _ = io.Copy(ss.ch, ptmx) // ends with EIO once the terminal is released
			}()
		}
		err := cmd.Wait()
		ss.mu.Lock()
		ss.exited = true
		ss.mu.Unlock()
		if out != nil {
			select {
			case <-out:
			case <-time.After(ptyDrainTimeout):
			}
			ptmx.Close()
			<-out
		}
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) && !errors.Is(err, exec.ErrWaitDelay) {
			ss.log.Info("session wait failed", "err", err)
		}
		_ = ss.ch.CloseWrite()
		ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if name := signalName(ws.Signal()); ok && ws.Signaled() && name != "" {
			_, _ = ss.ch.SendRequest("exit-signal", false, ssh.Marshal(exitSignal{Signal: name}))
		} else {
			code := cmd.ProcessState.ExitCode()
			if code < 0 { // killed by a signal without an RFC 4254 name: report it as a shell would
				code = 128 + int(ws.Signal())
			}
			_, _ = ss.ch.SendRequest("exit-status", false, ssh.Marshal(exitStatus{Status: uint32(code)}))
		}
		ss.ch.Close()
	}()
}

// kill kills a process that is still running (the channel went away before it exited).
func (ss *session) kill() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.cmd != nil && !ss.exited {
		_ = ss.cmd.Process.Kill()
	}
}
