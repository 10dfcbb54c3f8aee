package shim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/guestagent/runtime/libct"
)

// Runtime is what a shim needs of the OCI runtime (libct in production).
type Runtime interface {
	Create(ctx context.Context, id, bundle string, opts libct.CreateOpts) (Process, error)
	Start(ctx context.Context, id string) error
	Kill(id string, sig syscall.Signal, all bool) error
	Exec(ctx context.Context, id string, proc *specs.Process, opts libct.ExecOpts) (Process, error)
	Delete(ctx context.Context, id string, force bool) error
}

// Process is a container process the shim is the parent of.
type Process interface {
	Pid() int
	// Console is the pty master when the process has a terminal.
	Console() *os.File
	// Wait reaps the process.
	Wait() (syscall.WaitStatus, error)
}

// LogSink receives the container's output (a *jsonlog.Writer in production).
type LogSink interface {
	Stream(name string) io.WriteCloser
	Close() error
}

// Server is the body of a shim: it runs one container and serves its socket.
type Server struct {
	Config  Config
	Runtime Runtime
	Logs    LogSink
	// OOMKilled reports whether the OOM killer struck the container's
	// cgroup; called after init's exit, before the container is deleted. May be nil.
	OOMKilled func() (bool, error)
	Logger    *slog.Logger

	mu        sync.Mutex
	status    string // created, running, stopped
	pid       int
	console   *os.File // container's pty master, with Tty
	stdin     *os.File // write end of the container's stdin (or the console)
	stdinUsed bool     // a stdin client has come and gone (StdinOnce)
	exit      *Exit
	attachers map[*attacher]struct{}
	waiters   []chan struct{}
	started   chan struct{}
	stopped   chan struct{}
	conns     sync.WaitGroup
}

const (
	defaultStartTimeout = time.Minute
	drainTimeout        = 3 * time.Second
	attachQueue         = 512
)

// Run creates the container, calls ready with init's pid (or the error that
// prevented it), serves requests until init has exited and returns the exit,
// which it has also written to exit.json. Cancelling ctx kills the container.
func (s *Server) Run(ctx context.Context, ready func(pid int, err error)) (*Exit, error) {
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := s.Config
	s.status = "creating"
	s.attachers = map[*attacher]struct{}{}
	s.started = make(chan struct{})
	s.stopped = make(chan struct{})

	l, err := listenSocket(cfg.Dir)
	if err != nil {
		ready(0, err)
		return nil, err
	}
	sockPath := filepath.Join(cfg.Dir, SocketFile)
	closeListener := func() {
		l.Close()
		os.Remove(sockPath)
	}

	var (
		opts                         libct.CreateOpts
		stdinR, outW, errW           *os.File
		outR, errR                   *os.File
		childEnds, parentEnds, pipes []*os.File
	)
	closeAll := func(fs []*os.File) {
		for _, f := range fs {
			if f != nil {
				f.Close()
			}
		}
	}
	if !cfg.Tty {
		if cfg.OpenStdin {
			if stdinR, s.stdin, err = os.Pipe(); err != nil {
				closeListener()
				ready(0, fmt.Errorf("stdin pipe: %w", err))
				return nil, err
			}
		}
		if outR, outW, err = os.Pipe(); err == nil {
			errR, errW, err = os.Pipe()
		}
		if err != nil {
			closeAll([]*os.File{stdinR, s.stdin, outR, outW})
			closeListener()
			ready(0, fmt.Errorf("output pipe: %w", err))
			return nil, err
		}
		opts.Stdio = libct.Stdio{Stdin: stdinR, Stdout: outW, Stderr: errW}
		childEnds = []*os.File{stdinR, outW, errW}
		parentEnds = []*os.File{s.stdin, outR, errR}
	}
	_ = s.Runtime.Delete(ctx, cfg.ID, true) // a stale state from a shim that died
	proc, err := s.Runtime.Create(ctx, cfg.ID, cfg.Bundle, opts)
	closeAll(childEnds)
	if err == nil && cfg.Tty && proc.Console() == nil {
		_ = s.Runtime.Delete(ctx, cfg.ID, true)
		_, _ = proc.Wait()
		err = fmt.Errorf("create %s: runtime returned no console", cfg.ID)
	}
	if err != nil {
		closeAll(parentEnds)
		closeListener()
		ready(0, err)
		return nil, err
	}
	if cfg.Tty {
		s.console = proc.Console()
		if cfg.OpenStdin {
			s.stdin = s.console
		}
		outR = s.console
	}
	pipes = append(parentEnds, s.console)

	s.mu.Lock()
	s.status = "created"
	s.pid = proc.Pid()
	s.mu.Unlock()

	var copies sync.WaitGroup
	copies.Add(1)
	go s.copyOut(&copies, "stdout", FrameStdout, outR)
	if errR != nil {
		copies.Add(1)
		go s.copyOut(&copies, "stderr", FrameStderr, errR)
	}
	waited := make(chan *Exit, 1)
	go func() {
		ws, werr := proc.Wait()
		e := &Exit{FinishedAt: time.Now().UTC()}
		if werr != nil {
			e.ExitCode, e.Error = 255, fmt.Sprintf("wait for init: %v", werr)
		} else {
			e.ExitCode = ExitCode(ws.Exited(), ws.ExitStatus(), ws.Signaled(), int(ws.Signal()))
			if ws.Signaled() {
				e.Signal = int(ws.Signal())
			}
		}
		waited <- e
	}()
	acceptDone := make(chan struct{})
	go s.acceptLoop(l, acceptDone)
	ready(proc.Pid(), nil)

	timeout := cfg.StartTimeout
	if timeout <= 0 {
		timeout = defaultStartTimeout
	}
	timer := time.NewTimer(timeout)
	var exit *Exit
	var notStarted bool
	started := s.started
	for exit == nil {
		select {
		case <-started:
			started = nil
			timer.Stop()
		case <-timer.C:
			notStarted = true
			s.Logger.Warn("container not started in time; deleting it", "timeout", timeout)
			_ = s.Runtime.Kill(cfg.ID, unix.SIGKILL, true)
		case <-ctx.Done():
			_ = s.Runtime.Kill(cfg.ID, unix.SIGKILL, true)
			ctx = context.WithoutCancel(ctx)
		case exit = <-waited:
		}
	}
	timer.Stop()
	if notStarted && exit.Error == "" {
		exit.Error = "container was not started"
	}

	// Drain the output that is still in flight.
	drained := make(chan struct{})
	go func() { copies.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		s.Logger.Warn("container output still open after exit; closing it")
		closeAll(pipes)
		<-drained
	}
	if s.OOMKilled != nil {
		oom, err := s.OOMKilled()
		if err != nil {
			s.Logger.Warn("oom check", "err", err)
		}
		exit.OOMKilled = oom
	}
	if err := WriteJSONAtomic(filepath.Join(cfg.Dir, ExitFile), exit); err != nil {
		s.Logger.Error("record exit", "err", err)
	}
	if err := s.Runtime.Delete(ctx, cfg.ID, true); err != nil {
		s.Logger.Error("delete container", "err", err)
	}

	s.mu.Lock()
	s.status = "stopped"
	s.exit = exit
	payload := mustJSON(exit)
	for a := range s.attachers {
		a.finish(payload)
	}
	for _, w := range s.waiters {
		close(w)
	}
	s.waiters = nil
	close(s.stopped)
	s.mu.Unlock()

	closeListener()
	<-acceptDone
	connsDone := make(chan struct{})
	go func() { s.conns.Wait(); close(connsDone) }()
	select {
	case <-connsDone:
	case <-time.After(drainTimeout):
		s.Logger.Warn("clients still connected at exit")
	}
	closeAll(pipes)
	if err := s.Logs.Close(); err != nil {
		s.Logger.Error("close log", "err", err)
	}
	return exit, nil
}

// copyOut copies one output stream into the log and to the attachers.
func (s *Server) copyOut(wg *sync.WaitGroup, name string, typ byte, r *os.File) {
	defer wg.Done()
	w := s.Logs.Stream(name)
	defer w.Close()
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				s.Logger.Warn("write log", "stream", name, "err", werr)
			}
			s.broadcast(typ, buf[:n])
		}
		if err != nil {
			// EIO is how a pty master reports that every slave is closed.
			if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.EIO) && !errors.Is(err, os.ErrClosed) {
				s.Logger.Warn("read output", "stream", name, "err", err)
			}
			return
		}
	}
}

func (s *Server) broadcast(typ byte, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a := range s.attachers {
		if (typ == FrameStdout && a.stdout) || (typ == FrameStderr && a.stderr) {
			a.send(typ, append([]byte(nil), p...))
		}
	}
}

func (s *Server) acceptLoop(l *net.UnixListener, done chan struct{}) {
	defer close(done)
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			s.handle(conn)
		}()
	}
}

func (s *Server) handle(conn net.Conn) {
	br := bufio.NewReader(conn)
	var req Request
	if err := ReadLine(br, &req); err != nil {
		conn.Close()
		return
	}
	switch req.Op {
	case OpAttach:
		s.handleAttach(conn, br, req)
		return
	case OpExec:
		s.handleExec(conn, br, req)
		return
	case OpWait:
		s.handleWait(conn)
		return
	}
	defer conn.Close()
	var resp Response
	var err error
	switch req.Op {
	case OpStart:
		resp.Pid, err = s.start()
	case OpState:
		s.mu.Lock()
		resp.Status, resp.Pid, resp.Exit = s.status, s.pid, s.exit
		s.mu.Unlock()
	case OpKill:
		if !s.alive() {
			err = ErrNotRunning
		} else {
			err = s.Runtime.Kill(s.Config.ID, syscall.Signal(req.Signal), req.All)
			// The container may exit between the check and the kill.
			if errors.Is(err, libct.ErrNotRunning) || errors.Is(err, libct.ErrNotExist) {
				err = ErrNotRunning
			}
		}
	case OpResize:
		err = s.resize(s.console, req.Height, req.Width)
	default:
		err = fmt.Errorf("%w: unknown op %q", ErrProtocol, req.Op)
	}
	if err != nil {
		resp = Response{Error: err.Error()}
	}
	_ = WriteLine(conn, resp)
}

func (s *Server) alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status == "created" || s.status == "running"
}

func (s *Server) start() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.status {
	case "running":
		return s.pid, nil
	case "created":
	default:
		return 0, ErrNotRunning
	}
	if err := s.Runtime.Start(context.Background(), s.Config.ID); err != nil {
		return 0, err
	}
	s.status = "running"
	close(s.started)
	return s.pid, nil
}

func (s *Server) resize(console *os.File, h, w uint16) error {
	if console == nil {
		return nil // no terminal: nothing to resize (as dockerd ignores it)
	}
	ws := &unix.Winsize{Row: h, Col: w}
	if err := unix.IoctlSetWinsize(int(console.Fd()), unix.TIOCSWINSZ, ws); err != nil {
		return fmt.Errorf("resize terminal: %w", err)
	}
	return nil
}

func (s *Server) handleWait(conn net.Conn) {
	defer conn.Close()
	ch := make(chan struct{})
	s.mu.Lock()
	if s.exit == nil {
		s.waiters = append(s.waiters, ch)
	} else {
		close(ch)
	}
	s.mu.Unlock()
	if WriteLine(conn, Response{}) != nil {
		return
	}
	// Notice a client that leaves early.
	gone := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, conn); close(gone) }()
	select {
	case <-ch:
	case <-gone:
		return
	}
	s.mu.Lock()
	exit := s.exit
	s.mu.Unlock()
	_ = WriteFrame(conn, FrameExit, mustJSON(exit))
}

// attacher is one attach client.
type attacher struct {
	conn           net.Conn
	stdin          bool
	stdout, stderr bool
	queue          chan frame
	once           sync.Once
	finished       bool
}

type frame struct {
	typ byte
	p   []byte
}

// send queues a frame; a client too slow to keep up is dropped. Called with s.mu.
func (a *attacher) send(typ byte, p []byte) {
	if a.finished {
		return
	}
	select {
	case a.queue <- frame{typ, p}:
	default:
		a.finished = true
		close(a.queue)
		a.conn.Close()
	}
}

// finish queues the exit frame and ends the queue. Called with s.mu.
func (a *attacher) finish(exit []byte) {
	if a.finished {
		return
	}
	a.finished = true
	select {
	case a.queue <- frame{FrameExit, exit}:
	default:
	}
	close(a.queue)
}

func (s *Server) handleAttach(conn net.Conn, br *bufio.Reader, req Request) {
	defer conn.Close()
	a := &attacher{conn: conn, stdin: req.Stdin, stdout: req.Stdout, stderr: req.Stderr, queue: make(chan frame, attachQueue)}
	s.mu.Lock()
	if s.exit != nil {
		a.finish(mustJSON(s.exit))
	} else {
		s.attachers[a] = struct{}{}
	}
	pid := s.pid
	s.mu.Unlock()
	if err := WriteLine(conn, Response{Pid: pid}); err != nil {
		s.detach(a)
		return
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for f := range a.queue {
			if WriteFrame(conn, f.typ, f.p) != nil {
				conn.Close()
				for range a.queue {
				}
				return
			}
		}
	}()
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		s.attachInput(a, br)
	}()
	select {
	case <-writerDone:
		// The container exited (or the client was too slow): the exit frame
		// is written; closing the connection ends the reader.
	case <-readerDone:
		// The client left.
	}
	conn.Close()
	s.detach(a)
	<-writerDone
	<-readerDone
}

// mustJSON encodes v, which is always encodable (an *Exit).
func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// attachInput reads an attach client's frames until it leaves.
func (s *Server) attachInput(a *attacher, br *bufio.Reader) {
	stdinOpen := a.stdin
	defer func() {
		if stdinOpen {
			s.stdinDone()
		}
	}()
	for {
		typ, p, err := ReadFrame(br)
		if err != nil {
			return
		}
		switch typ {
		case FrameStdin:
			if !stdinOpen {
				continue
			}
			s.mu.Lock()
			w := s.stdin
			s.mu.Unlock()
			if w != nil {
				if _, err := w.Write(p); err != nil {
					s.Logger.Debug("write stdin", "err", err)
				}
			}
		case FrameClose:
			if stdinOpen {
				stdinOpen = false
				s.stdinDone()
			}
		case FrameResize:
			if h, w, err := ParseResize(p); err == nil {
				_ = s.resize(s.console, h, w)
			}
		}
	}
}

// stdinDone is called when a stdin client's input ends; with StdinOnce the
// first one closes the container's stdin.
func (s *Server) stdinDone() {
	if !s.Config.StdinOnce {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stdinUsed || s.stdin == nil {
		return
	}
	s.stdinUsed = true
	if s.stdin == s.console {
		_, _ = s.stdin.Write([]byte{4}) // ^D: end of input on a terminal
	} else {
		s.stdin.Close()
	}
	s.stdin = nil
}

func (s *Server) detach(a *attacher) {
	s.mu.Lock()
	delete(s.attachers, a)
	if !a.finished {
		a.finished = true
		close(a.queue)
	}
	s.mu.Unlock()
}

// handleExec runs one exec and streams its stdio over conn.
func (s *Server) handleExec(conn net.Conn, br *bufio.Reader, req Request) {
	defer conn.Close()
	fail := func(err error) { _ = WriteLine(conn, Response{Error: err.Error()}) }
	if req.Process == nil {
		fail(fmt.Errorf("%w: exec without a process", ErrProtocol))
		return
	}
	s.mu.Lock()
	running := s.status == "running"
	s.mu.Unlock()
	if !running {
		fail(ErrNotRunning)
		return
	}
	tty := req.Process.Terminal
	var (
		opts                   libct.ExecOpts
		stdinR, stdinW         *os.File
		outR, outW, errR, errW *os.File
		childEnds, parentEnds  []*os.File
		err                    error
		closeAll               = func(fs []*os.File) {
			for _, f := range fs {
				if f != nil {
					f.Close()
				}
			}
		}
	)
	if !tty {
		if req.Stdin {
			stdinR, stdinW, err = os.Pipe()
		}
		if err == nil {
			outR, outW, err = os.Pipe()
		}
		if err == nil {
			errR, errW, err = os.Pipe()
		}
		childEnds = []*os.File{stdinR, outW, errW}
		parentEnds = []*os.File{stdinW, outR, errR}
		if err != nil {
			closeAll(childEnds)
			closeAll(parentEnds)
			fail(fmt.Errorf("exec pipes: %w", err))
			return
		}
		opts.Stdio = libct.Stdio{Stdin: stdinR, Stdout: outW, Stderr: errW}
	}
	proc, err := s.Runtime.Exec(context.Background(), s.Config.ID, req.Process, opts)
	closeAll(childEnds)
	if err == nil && tty && proc.Console() == nil {
		_ = s.Runtime.Kill(s.Config.ID, 0, false)
		err = errors.New("runtime returned no console for the exec")
	}
	if err != nil {
		closeAll(parentEnds)
		fail(err)
		return
	}
	var console *os.File
	if tty {
		console = proc.Console()
		outR = console
		if req.Stdin {
			stdinW = console
		}
		parentEnds = []*os.File{console}
	}
	if WriteLine(conn, Response{Pid: proc.Pid()}) != nil {
		conn.Close()
	}

	var wmu sync.Mutex
	connOK := true
	writeFrame := func(typ byte, p []byte) {
		wmu.Lock()
		defer wmu.Unlock()
		if connOK && WriteFrame(conn, typ, p) != nil {
			connOK = false
		}
	}
	var copies sync.WaitGroup
	pump := func(typ byte, r *os.File, want bool) {
		defer copies.Done()
		buf := make([]byte, 32*1024)
		for {
			n, err := r.Read(buf)
			if n > 0 && want {
				writeFrame(typ, buf[:n])
			}
			if err != nil {
				return
			}
		}
	}
	copies.Add(1)
	go pump(FrameStdout, outR, req.Stdout)
	if errR != nil {
		copies.Add(1)
		go pump(FrameStderr, errR, req.Stderr)
	}
	go func() {
		stdin := stdinW
		for {
			typ, p, err := ReadFrame(br)
			if err != nil {
				if stdin != nil && !tty {
					stdin.Close()
				}
				return
			}
			switch typ {
			case FrameStdin:
				if stdin != nil {
					_, _ = stdin.Write(p)
				}
			case FrameClose:
				if stdin != nil {
					if tty {
						_, _ = stdin.Write([]byte{4})
					} else {
						stdin.Close()
					}
					stdin = nil
				}
			case FrameResize:
				if h, w, err := ParseResize(p); err == nil {
					_ = s.resize(console, h, w)
				}
			}
		}
	}()

	ws, werr := proc.Wait()
	exit := &Exit{FinishedAt: time.Now().UTC()}
	if werr != nil {
		exit.ExitCode, exit.Error = 255, fmt.Sprintf("wait for exec: %v", werr)
	} else {
		exit.ExitCode = ExitCode(ws.Exited(), ws.ExitStatus(), ws.Signaled(), int(ws.Signal()))
		if ws.Signaled() {
			exit.Signal = int(ws.Signal())
		}
	}
	drained := make(chan struct{})
	go func() { copies.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainTimeout):
		closeAll([]*os.File{outR, errR})
		<-drained
	}
	writeFrame(FrameExit, mustJSON(exit))
	conn.Close()
	closeAll(parentEnds)
}
