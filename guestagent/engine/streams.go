package engine

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	ctypes "github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/guestagent/runtime/container"
	"github.com/berth-dev/berth/guestagent/runtime/jsonlog"
)

// Stream framing of dockerd's attach, logs and exec without a TTY: an
// 8-byte header (stream, 0, 0, 0, big-endian length) before each chunk.
const (
	streamStdin  = 0
	streamStdout = 1
	streamStderr = 2
)

const (
	mediaRaw         = "application/vnd.docker.raw-stream"
	mediaMultiplexed = "application/vnd.docker.multiplexed-stream"
)

// muxWriter frames writes for one stream; writers of one connection share
// mu so frames never interleave.
type muxWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	stream byte
}

func (m *muxWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	buf := make([]byte, 8+len(p))
	buf[0] = m.stream
	binary.BigEndian.PutUint32(buf[4:], uint32(len(p)))
	copy(buf[8:], p)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.w.Write(buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// lockedWriter serialises raw writes from several goroutines.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// outputs returns the stdout and stderr writers for a connection: framed
// without a TTY, raw (both into one stream) with one.
func outputs(w io.Writer, tty bool) (stdout, stderr io.Writer) {
	mu := &sync.Mutex{}
	if tty {
		lw := &lockedWriter{mu: mu, w: w}
		return lw, lw
	}
	return &muxWriter{mu: mu, w: w, stream: streamStdout}, &muxWriter{mu: mu, w: w, stream: streamStderr}
}

// hijack takes over the connection for a raw stream, answering 101 when the
// client asked to upgrade (the docker CLI does) and 200 otherwise.
func hijack(w http.ResponseWriter, r *http.Request, multiplexed bool) (net.Conn, *bufio.Reader, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the connection cannot be hijacked")
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("hijack connection: %w", err)
	}
	media := mediaRaw
	if multiplexed && compareVersions(requestVersion(r.Context()), "1.42") >= 0 {
		media = mediaMultiplexed
	}
	var head string
	if r.Header.Get("Upgrade") != "" {
		head = "HTTP/1.1 101 UPGRADED\r\nContent-Type: " + media + "\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
	} else {
		head = "HTTP/1.1 200 OK\r\nContent-Type: " + media + "\r\n\r\n"
	}
	if _, err := conn.Write([]byte(head)); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("answer hijacked connection: %w", err)
	}
	return conn, brw.Reader, nil
}

// closeWrite half-closes conn when it can, so the client sees the end of
// the output while its stdin may still be flowing.
func closeWrite(conn net.Conn) {
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

func (s *Server) postContainerAttach(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	c, err := s.containers.Get(ref)
	if err != nil {
		return s.noSuchContainer(ref, err)
	}
	var flags [5]bool
	for i, name := range []string{"stream", "stdin", "stdout", "stderr", "logs"} {
		if flags[i], err = boolParam(r, name); err != nil {
			return err
		}
	}
	stream, stdin, stdout, stderr, logs := flags[0], flags[1], flags[2], flags[3], flags[4]
	if !stdin && !stdout && !stderr {
		return invalidf("at least one of stdin, stdout or stderr must be attached")
	}
	conn, in, err := hijack(w, r, !c.Config.Tty)
	if err != nil {
		return err
	}
	defer conn.Close()
	// A hijacked request's context is cancelled when the client half-closes
	// its stdin; the attachment must outlive that and end with the
	// container (or a failed write to a gone client).
	ctx := context.WithoutCancel(r.Context())
	outW, errW := outputs(conn, c.Config.Tty)
	var opts container.AttachOptions
	if stdout {
		opts.Stdout = outW
	}
	if stderr {
		opts.Stderr = errW
	}
	if stdin {
		opts.Stdin = in
	}
	if logs {
		err := s.containers.Logs(ctx, c.ID, container.LogsOptions{Stdout: stdout, Stderr: stderr, Tail: -1}, func(e jsonlog.Entry) error {
			return writeEntry(e, opts.Stdout, opts.Stderr, false)
		})
		if err != nil && !errors.Is(err, jsonlog.ErrCorrupt) {
			s.log.Debug("attach: replaying logs failed", "container", c.ID, "err", err)
		}
	}
	if !stream {
		return nil
	}
	att, err := s.containers.Attach(ctx, c.ID, opts)
	if err != nil {
		fmt.Fprintf(errW, "Error attaching: %v\n", err)
		return nil
	}
	defer att.Close()
	if err := att.Wait(ctx); err != nil {
		s.log.Debug("attach ended", "container", c.ID, "err", err)
	}
	closeWrite(conn)
	return nil
}

// writeEntry writes one log entry to the writer of its stream.
func writeEntry(e jsonlog.Entry, stdout, stderr io.Writer, timestamps bool) error {
	w := stdout
	if e.Stream == "stderr" {
		w = stderr
	}
	if w == nil {
		return nil
	}
	line := e.Line
	if timestamps {
		ts := e.Time.UTC().Format("2006-01-02T15:04:05.000000000Z07:00") + " "
		line = append([]byte(ts), line...)
	}
	_, err := w.Write(line)
	return err
}

// flushWriter flushes the response after every write (followed logs).
type flushWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if f.f != nil {
		f.f.Flush()
	}
	return n, err
}

func (s *Server) getContainerLogs(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	c, err := s.containers.Get(ref)
	if err != nil {
		return s.noSuchContainer(ref, err)
	}
	q := r.URL.Query()
	var flags [4]bool
	for i, name := range []string{"stdout", "stderr", "follow", "timestamps"} {
		if flags[i], err = boolParam(r, name); err != nil {
			return err
		}
	}
	stdout, stderr, follow, timestamps := flags[0], flags[1], flags[2], flags[3]
	if !stdout && !stderr {
		return invalidf("Bad parameters: you must choose at least one stream")
	}
	opts := container.LogsOptions{Stdout: stdout, Stderr: stderr, Follow: follow, Tail: -1}
	if t := q.Get("tail"); t != "" && t != "all" {
		n, err := strconv.Atoi(t)
		if err != nil {
			return invalidf("invalid value for tail: %q", t)
		}
		opts.Tail = n
	}
	now := time.Now()
	if opts.Since, err = parseTime(q.Get("since"), now); err != nil {
		return err
	}
	if opts.Until, err = parseTime(q.Get("until"), now); err != nil {
		return err
	}
	media := mediaRaw
	if !c.Config.Tty && compareVersions(requestVersion(r.Context()), "1.42") >= 0 {
		media = mediaMultiplexed
	}
	w.Header().Set("Content-Type", media)
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	if f != nil {
		f.Flush()
	}
	var out io.Writer = w
	if follow {
		out = flushWriter{w: w, f: f}
	}
	stdoutW, stderrW := outputs(out, c.Config.Tty)
	err = s.containers.Logs(r.Context(), c.ID, opts, func(e jsonlog.Entry) error {
		return writeEntry(e, stdoutW, stderrW, timestamps)
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		// The status is sent; what a client sees is the stream ending.
		s.log.Debug("logs ended early", "container", c.ID, "err", err)
	}
	return nil
}

// execState is one exec instance, from create to its exit.
type execState struct {
	id, containerID string
	cfg             ctypes.ExecCreateRequest

	mu       sync.Mutex
	started  bool
	running  bool
	exitCode *int
	pid      int
	proc     container.ExecSession
}

func newExecID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) execByID(id string) (*execState, error) {
	s.execMu.Lock()
	defer s.execMu.Unlock()
	e, ok := s.execs[id]
	if !ok {
		return nil, notFoundf("No such exec instance: %s", id)
	}
	return e, nil
}

func (s *Server) postContainerExec(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	var req ctypes.ExecCreateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if len(req.Cmd) == 0 {
		return invalidf("No exec command specified")
	}
	if req.Privileged {
		return invalidf("privileged exec is not supported by berth")
	}
	c, err := s.containers.Get(ref)
	if err != nil {
		return s.noSuchContainer(ref, err)
	}
	if !c.State.Running {
		return conflictf("container %s is not running", c.ID)
	}
	e := &execState{id: newExecID(), containerID: c.ID, cfg: req}
	s.execMu.Lock()
	s.execs[e.id] = e
	s.execMu.Unlock()
	return writeJSON(w, http.StatusCreated, ctypes.ExecCreateResponse{ID: e.id})
}

func (s *Server) postExecStart(w http.ResponseWriter, r *http.Request) error {
	e, err := s.execByID(r.PathValue("id"))
	if err != nil {
		return err
	}
	var req ctypes.ExecStartRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return conflictf("Error: Exec command %s has already run", e.id)
	}
	e.started = true
	e.mu.Unlock()

	opts := container.ExecOptions{Cmd: e.cfg.Cmd, Env: e.cfg.Env, User: e.cfg.User, WorkingDir: e.cfg.WorkingDir, Tty: e.cfg.Tty}
	if req.Detach {
		// The process outlives the request.
		proc, err := s.containers.Exec(context.WithoutCancel(r.Context()), e.containerID, opts)
		if err != nil {
			s.finishExec(e, nil, err)
			return err
		}
		s.runExec(e, proc, req.ConsoleSize)
		go s.waitExec(context.Background(), e, proc)
		w.WriteHeader(http.StatusOK)
		return nil
	}

	conn, in, err := hijack(w, r, !e.cfg.Tty)
	if err != nil {
		s.finishExec(e, nil, err)
		return err
	}
	defer conn.Close()
	outW, errW := outputs(conn, e.cfg.Tty)
	if e.cfg.AttachStdout {
		opts.Stdout = outW
	}
	if e.cfg.AttachStderr {
		opts.Stderr = errW
	}
	if e.cfg.AttachStdin {
		opts.Stdin = in
	}
	proc, err := s.containers.Exec(context.WithoutCancel(r.Context()), e.containerID, opts)
	if err != nil {
		s.finishExec(e, nil, err)
		fmt.Fprintf(errW, "%v\n", err)
		return nil
	}
	s.runExec(e, proc, req.ConsoleSize)
	// As for attach: the client's stdin EOF cancels the request context.
	s.waitExec(context.WithoutCancel(r.Context()), e, proc)
	closeWrite(conn)
	return nil
}

func (s *Server) runExec(e *execState, proc container.ExecSession, size *[2]uint) {
	e.mu.Lock()
	e.running, e.proc, e.pid = true, proc, proc.Pid()
	e.mu.Unlock()
	if size != nil && e.cfg.Tty {
		_ = proc.Resize(uint16(size[0]), uint16(size[1]))
	}
}

func (s *Server) waitExec(ctx context.Context, e *execState, proc container.ExecSession) {
	code, err := proc.Wait(ctx)
	s.finishExec(e, &code, err)
	_ = proc.Close()
}

func (s *Server) finishExec(e *execState, code *int, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.running = false
	switch {
	case err != nil && code == nil:
		// The process never ran: dockerd reports 126 (cannot execute) or
		// 127 (not found) through the exit code too.
		c := 126
		e.exitCode = &c
	case err != nil:
		s.log.Debug("exec wait failed", "exec", e.id, "err", err)
		e.exitCode = code
	default:
		e.exitCode = code
	}
}

func (s *Server) postExecResize(w http.ResponseWriter, r *http.Request) error {
	e, err := s.execByID(r.PathValue("id"))
	if err != nil {
		return err
	}
	h, wd, err := sizeParams(r)
	if err != nil {
		return err
	}
	e.mu.Lock()
	proc := e.proc
	e.mu.Unlock()
	if proc == nil {
		return conflictf("exec %s is not running", e.id)
	}
	if err := proc.Resize(h, wd); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) getExecJSON(w http.ResponseWriter, r *http.Request) error {
	e, err := s.execByID(r.PathValue("id"))
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	resp := ctypes.ExecInspectResponse{
		ID:          e.id,
		Running:     e.running,
		ExitCode:    e.exitCode,
		OpenStdin:   e.cfg.AttachStdin,
		OpenStdout:  e.cfg.AttachStdout,
		OpenStderr:  e.cfg.AttachStderr,
		ContainerID: e.containerID,
		Pid:         e.pid,
		ProcessConfig: &ctypes.ExecProcessConfig{
			Tty: e.cfg.Tty, Entrypoint: e.cfg.Cmd[0], Arguments: e.cfg.Cmd[1:], User: e.cfg.User,
		},
	}
	return writeJSON(w, http.StatusOK, resp)
}

// forgetExecs drops the exec instances of a removed container.
func (s *Server) forgetExecs(containerID string) {
	s.execMu.Lock()
	defer s.execMu.Unlock()
	for id, e := range s.execs {
		if e.containerID == containerID {
			delete(s.execs, id)
		}
	}
}
