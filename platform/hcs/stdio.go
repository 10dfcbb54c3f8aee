package hcs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/guestagent/runtime/container"
)

const (
	// attachLag is how many bytes of output an attacher may lag behind before it is dropped: a slow
	// client never holds up the container (nor its log).
	attachLag = 1 << 20
	// maxChunk bounds the chunks that queued output is merged into.
	maxChunk = 64 << 10
	// drainTimeout bounds the wait for an exec's output after its exit (a child process that inherited
	// the pipes may keep them open).
	drainTimeout = 3 * time.Second
)

// errSlowClient ends an attachment that could not keep up with the container's output.
var errSlowClient = errors.New("hcs: attached client too slow, output dropped")

// broker is a container's stdio switchboard. The Service owns the streams of the container's first
// process: each output chunk goes to the json-file log and to every current attacher; attachers' input
// goes to the process's stdin (when the container has OpenStdin). A broker lives as long as the
// container's record; each run binds it anew (start … end). Attachers that arrive while the container
// is not running wait for its next start, as docker run attaches before it starts.
type broker struct {
	openStdin, stdinOnce bool
	log                  *slog.Logger

	mu        sync.Mutex
	attachers map[*attachment]struct{}
	running   bool
	stdin     io.WriteCloser // the current run's stdin until it is closed
	closed    bool           // the container was removed
}

func newBroker(cfg container.Config, log *slog.Logger) *broker {
	return &broker{openStdin: cfg.OpenStdin, stdinOnce: cfg.StdinOnce, log: log, attachers: map[*attachment]struct{}{}}
}

// attachment is one attached client: a queue of output written by its own goroutine, and
// optionally a pump of its stdin into the process.
type attachment struct {
	b              *broker
	stdin          io.Reader
	stdout, stderr io.Writer
	wake           chan struct{} // signals queued output or the end (capacity 1)
	done           chan struct{}
	doneOnce       sync.Once
	err            error       // set before done is closed
	detached       atomic.Bool // Close was called: nothing more is written
	dropped        atomic.Bool // it ended early: nothing more is written

	// Guarded by b.mu.
	bound      bool           // it belongs to the current run
	queue      []chunk        // output not yet written
	queued     int            // bytes in queue
	finished   bool           // nothing more is queued
	pumpStdin  io.WriteCloser // the stdin its pump feeds
	stdinEnded bool           // its input has ended (or it left)
}

type chunk struct {
	stderr bool
	p      []byte
}

var _ container.AttachSession = (*attachment)(nil)

// attach adds an attacher; it is bound to the current run if the container is running.
func (b *broker) attach(opts container.AttachOptions) (*attachment, error) {
	a := &attachment{b: b, stdin: opts.Stdin, stdout: opts.Stdout, stderr: opts.Stderr, wake: make(chan struct{}, 1), done: make(chan struct{})}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("%w: the container is being removed", container.ErrConflict)
	}
	b.attachers[a] = struct{}{}
	go a.deliver()
	if b.running {
		b.bindLocked(a)
	}
	return a, nil
}

// bindLocked makes a part of the current run and starts its stdin pump.
func (b *broker) bindLocked(a *attachment) {
	a.bound = true
	if a.stdin != nil && b.openStdin && b.stdin != nil && !a.detached.Load() {
		a.pumpStdin = b.stdin
		go b.pump(a, b.stdin)
	}
}

// start binds a run: stdin is the process's (nil without OpenStdin); attachers waiting for the start
// join it.
func (b *broker) start(stdin io.WriteCloser) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.running, b.stdin = true, stdin
	for a := range b.attachers {
		b.bindLocked(a)
	}
}

// end ends a run once all its output is published: the process's stdin is closed and the run's
// attachers finish (their remaining output is still written). Attachers that arrive later wait for the
// next start.
func (b *broker) end() {
	b.mu.Lock()
	stdin := b.stdin
	b.running, b.stdin = false, nil
	for a := range b.attachers {
		if a.bound {
			b.finishLocked(a, nil)
		}
	}
	b.mu.Unlock()
	if stdin != nil {
		b.logErr("close stdin", stdin.Close())
	}
}

// close finishes every attacher, for good: the container is gone.
func (b *broker) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for a := range b.attachers {
		b.finishLocked(a, nil)
	}
}

// finishLocked removes a and ends its queue. Without a failure its goroutine writes what is queued and
// ends it; with one it ends now (a write to the client may be stuck: the engine closes the connection
// when the attachment ends) and the queue is dropped.
func (b *broker) finishLocked(a *attachment, failure error) {
	delete(b.attachers, a)
	if a.finished {
		return
	}
	a.finished = true
	a.signal()
	if failure != nil {
		a.dropped.Store(true)
		a.end(failure)
	}
}

// publish queues a copy of p for every attacher of the current run that attached the stream.
func (b *broker) publish(stderr bool, p []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for a := range b.attachers {
		if !a.bound || a.finished || (stderr && a.stderr == nil) || (!stderr && a.stdout == nil) {
			continue
		}
		if a.queued+len(p) > attachLag {
			b.finishLocked(a, errSlowClient)
			continue
		}
		if n := len(a.queue); n > 0 && a.queue[n-1].stderr == stderr && len(a.queue[n-1].p)+len(p) <= maxChunk {
			a.queue[n-1].p = append(a.queue[n-1].p, p...)
		} else {
			a.queue = append(a.queue, chunk{stderr: stderr, p: append(make([]byte, 0, max(len(p), 4<<10)), p...)})
		}
		a.queued += len(p)
		a.signal()
	}
}

// pump copies an attacher's input into the run's stdin until the input ends, the attacher leaves or
// the stdin is closed.
func (b *broker) pump(a *attachment, stdin io.WriteCloser) {
	buf := make([]byte, 32<<10)
	for {
		n, err := a.stdin.Read(buf)
		if n > 0 {
			b.mu.Lock()
			current := b.stdin == stdin && !a.detached.Load()
			b.mu.Unlock()
			if !current {
				break
			}
			if _, werr := stdin.Write(buf[:n]); werr != nil {
				b.log.Debug("write stdin", "err", werr)
			}
		}
		if err != nil {
			break
		}
	}
	b.stdinDone(a)
}

// stdinDone records that a's input has ended; with StdinOnce the first attacher's end closes the
// process's stdin (docker run -i sees the container's input end with its own).
func (b *broker) stdinDone(a *attachment) {
	b.mu.Lock()
	stdin := a.pumpStdin
	if stdin == nil || a.stdinEnded {
		b.mu.Unlock()
		return
	}
	a.stdinEnded = true
	if !b.stdinOnce || b.stdin != stdin {
		b.mu.Unlock()
		return
	}
	b.stdin = nil
	b.mu.Unlock()
	b.logErr("close stdin", stdin.Close())
}

func (b *broker) logErr(op string, err error) {
	if err != nil {
		b.log.Warn(op, "err", err)
	}
}

// signal wakes deliver.
func (a *attachment) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// deliver writes the queued output to the client until the queue ends; after a failed write (the
// client is gone), a detach or a drop it writes nothing more.
func (a *attachment) deliver() {
	var failed error
	for {
		<-a.wake
		a.b.mu.Lock()
		batch, finished := a.queue, a.finished
		a.queue, a.queued = nil, 0
		a.b.mu.Unlock()
		for _, c := range batch {
			if failed != nil || a.detached.Load() || a.dropped.Load() {
				break
			}
			w := a.stdout
			if c.stderr {
				w = a.stderr
			}
			if _, err := w.Write(c.p); err != nil {
				failed = fmt.Errorf("write to attached client: %w", err)
				a.b.mu.Lock()
				a.b.finishLocked(a, nil)
				a.b.mu.Unlock()
			}
		}
		if finished {
			break
		}
	}
	a.end(failed)
}

// end ends the attachment once, with the reason it failed (nil when it did not).
func (a *attachment) end(err error) {
	a.doneOnce.Do(func() {
		a.err = err
		close(a.done)
	})
}

// Done is closed when the attachment has ended: the run ended, the client detached or is gone.
func (a *attachment) Done() <-chan struct{} { return a.done }

// Wait waits for the attachment to end; all output is written when it returns nil.
func (a *attachment) Wait(ctx context.Context) error {
	select {
	case <-a.done:
		return a.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close detaches; the container keeps running.
func (a *attachment) Close() error {
	a.detached.Store(true)
	a.b.stdinDone(a)
	a.b.mu.Lock()
	a.b.finishLocked(a, nil)
	a.b.mu.Unlock()
	a.end(nil)
	return nil
}

// teeOutput is the writer of one output stream of a run: every chunk goes to the attachers and the log.
// It never fails, so the process's output keeps flowing when the log cannot be written.
type teeOutput struct {
	b      *broker
	stderr bool
	log    io.WriteCloser
	logErr error
}

func (b *broker) output(stream string, log io.WriteCloser) io.WriteCloser {
	return &teeOutput{b: b, stderr: stream == "stderr", log: log}
}

func (t *teeOutput) Write(p []byte) (int, error) {
	t.b.publish(t.stderr, p)
	if t.logErr == nil {
		if _, err := t.log.Write(p); err != nil {
			t.logErr = err
			t.b.log.Warn("write log", "err", err)
		}
	}
	return len(p), nil
}

func (t *teeOutput) Close() error { return t.log.Close() }

// execSession is a process started by Exec: its output goes to the exec's writers only.
type execSession struct {
	proc     Process
	pid      int
	tty      bool
	done     chan struct{}
	code     int   // set before done is closed
	err      error // set before done is closed
	detached atomic.Bool
}

var _ container.ExecSession = (*execSession)(nil)

func (e *execSession) Pid() int { return e.pid }

// Resize sets the size of the exec's console.
func (e *execSession) Resize(height, width uint16) error {
	if !e.tty {
		return fmt.Errorf("resize exec %d: %w: it has no terminal", e.pid, container.ErrConflict)
	}
	if err := e.proc.Resize(height, width); err != nil {
		return fmt.Errorf("resize exec %d: %w", e.pid, err)
	}
	return nil
}

// Done is closed when the process has exited and its output is delivered.
func (e *execSession) Done() <-chan struct{} { return e.done }

// Wait waits for the process to exit and returns its exit code.
func (e *execSession) Wait(ctx context.Context) (int, error) {
	select {
	case <-e.done:
		return e.code, e.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Close detaches from the process, which keeps running; its output is discarded from now on.
func (e *execSession) Close() error {
	e.detached.Store(true)
	return nil
}

// execOutput writes a stream of an exec to its client until the client is gone or detached, then
// discards, so the process is never blocked on its output.
type execOutput struct {
	e      *execSession
	w      io.Writer
	failed bool
}

func (o *execOutput) Write(p []byte) (int, error) {
	if o.w == nil || o.failed || o.e.detached.Load() {
		return len(p), nil
	}
	if _, err := o.w.Write(p); err != nil {
		o.failed = true
	}
	return len(p), nil
}

// runExec wires a started process to the exec's streams and returns its session; onExit is called
// with the exit code once the output is delivered, before the session's Done closes.
func runExec(proc Process, opts container.ExecOptions, log *slog.Logger, onExit func(code int, err error)) *execSession {
	e := &execSession{proc: proc, pid: proc.Pid(), tty: opts.Tty, done: make(chan struct{})}
	stdin, stdout, stderr := proc.Stdio()
	var copies sync.WaitGroup
	for _, s := range []struct {
		r io.Reader
		w io.Writer
	}{{stdout, opts.Stdout}, {stderr, opts.Stderr}} {
		if s.r == nil {
			continue
		}
		out := &execOutput{e: e, w: s.w}
		copies.Go(func() { _, _ = io.Copy(out, s.r) })
	}
	if stdin != nil {
		if opts.Stdin != nil {
			go func() {
				_, _ = io.Copy(stdin, opts.Stdin)
				if err := stdin.Close(); err != nil {
					log.Debug("close exec stdin", "pid", e.pid, "err", err)
				}
			}()
		} else if err := stdin.Close(); err != nil {
			log.Debug("close exec stdin", "pid", e.pid, "err", err)
		}
	}
	go func() {
		code, err := proc.Wait()
		drained := make(chan struct{})
		go func() {
			copies.Wait()
			close(drained)
		}()
		select {
		case <-drained:
		case <-time.After(drainTimeout):
			log.Debug("exec output still open after its exit", "pid", e.pid)
		}
		if err != nil {
			code = -1
		}
		if err := proc.Close(); err != nil {
			log.Debug("close exec process", "pid", e.pid, "err", err)
		}
		e.code, e.err = code, err
		onExit(code, err)
		close(e.done)
	}()
	return e
}
