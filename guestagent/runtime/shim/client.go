package shim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Client talks to the shim of the container directory Dir.
type Client struct {
	Dir string
}

// Streams are a client's ends of attach and exec streams; a nil field is a
// stream the client does not want.
type Streams struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// roundTrip dials, sends req and reads the response line. The returned
// connection carries the frames that follow, if any.
func (c *Client) roundTrip(ctx context.Context, req Request) (net.Conn, *bufio.Reader, *Response, error) {
	conn, err := dialSocket(ctx, c.Dir)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("shim %s: %w: %v", c.Dir, ErrUnavailable, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	br := bufio.NewReader(conn)
	var resp Response
	err = WriteLine(conn, req)
	if err == nil {
		err = ReadLine(br, &resp)
	}
	if !stop() {
		conn.Close()
		return nil, nil, nil, fmt.Errorf("shim %s %s: %w", c.Dir, req.Op, ctx.Err())
	}
	if err != nil {
		conn.Close()
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
			return nil, nil, nil, fmt.Errorf("shim %s %s: %w: %v", c.Dir, req.Op, ErrUnavailable, err)
		}
		return nil, nil, nil, fmt.Errorf("shim %s %s: %w", c.Dir, req.Op, err)
	}
	if resp.Error != "" {
		conn.Close()
		return nil, nil, &resp, &RemoteError{Op: req.Op, Msg: resp.Error}
	}
	return conn, br, &resp, nil
}

// RemoteError is an error the shim answered with.
type RemoteError struct {
	Op  string
	Msg string
}

func (e *RemoteError) Error() string { return "shim " + e.Op + ": " + e.Msg }

// Is makes errors.Is(err, ErrNotRunning) hold for the shim's "not running".
func (e *RemoteError) Is(target error) bool {
	return target == ErrNotRunning && e.Msg == ErrNotRunning.Error()
}

func (c *Client) simple(ctx context.Context, req Request) (*Response, error) {
	conn, _, resp, err := c.roundTrip(ctx, req)
	if err != nil {
		return resp, err
	}
	conn.Close()
	return resp, nil
}

// Start releases the created container's init and returns its pid.
func (c *Client) Start(ctx context.Context) (int, error) {
	resp, err := c.simple(ctx, Request{Op: OpStart})
	if err != nil {
		return 0, err
	}
	return resp.Pid, nil
}

// State asks for the container's status, pid and (once stopped) exit.
func (c *Client) State(ctx context.Context) (*Response, error) {
	return c.simple(ctx, Request{Op: OpState})
}

// Kill sends sig to init, or with all to every process of the container.
func (c *Client) Kill(ctx context.Context, sig syscall.Signal, all bool) error {
	_, err := c.simple(ctx, Request{Op: OpKill, Signal: int(sig), All: all})
	return err
}

// Resize sets the size of the container's terminal.
func (c *Client) Resize(ctx context.Context, height, width uint16) error {
	_, err := c.simple(ctx, Request{Op: OpResize, Height: height, Width: width})
	return err
}

// Wait blocks until the container's init has exited and the shim has
// cleaned up, and returns the exit. ctx bounds the whole wait.
func (c *Client) Wait(ctx context.Context) (*Exit, error) {
	conn, br, _, err := c.roundTrip(ctx, Request{Op: OpWait})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	for {
		typ, p, err := ReadFrame(br)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("shim %s wait: %w", c.Dir, ctx.Err())
			}
			return nil, fmt.Errorf("shim %s wait: %w: %v", c.Dir, ErrUnavailable, err)
		}
		if typ == FrameExit {
			return decodeExit(p)
		}
	}
}

// Attach attaches the streams to the container. Output produced from now on
// is copied to st.Stdout/st.Stderr; st.Stdin is forwarded when the container
// has OpenStdin. The session ends when the container exits, the client calls
// Close, or writing output fails.
func (c *Client) Attach(ctx context.Context, st Streams) (*Session, error) {
	req := Request{Op: OpAttach, Stdin: st.Stdin != nil, Stdout: st.Stdout != nil, Stderr: st.Stderr != nil}
	conn, br, resp, err := c.roundTrip(ctx, req)
	if err != nil {
		return nil, err
	}
	return newSession(conn, br, resp.Pid, st), nil
}

// Exec runs proc in the running container with the given streams.
func (c *Client) Exec(ctx context.Context, proc *specs.Process, st Streams) (*Session, error) {
	req := Request{Op: OpExec, Process: proc, Stdin: st.Stdin != nil, Stdout: st.Stdout != nil, Stderr: st.Stderr != nil}
	conn, br, resp, err := c.roundTrip(ctx, req)
	if err != nil {
		return nil, err
	}
	return newSession(conn, br, resp.Pid, st), nil
}

// Session is an attach or exec stream.
type Session struct {
	// Pid is the exec'd process's pid (or init's, for attach).
	Pid int

	conn   net.Conn
	wmu    sync.Mutex
	closed bool
	done   chan struct{}
	exit   *Exit
	err    error
}

func newSession(conn net.Conn, br *bufio.Reader, pid int, st Streams) *Session {
	s := &Session{Pid: pid, conn: conn, done: make(chan struct{})}
	go s.readLoop(br, st)
	if st.Stdin != nil {
		go s.stdinLoop(st.Stdin)
	}
	return s
}

func (s *Session) readLoop(br *bufio.Reader, st Streams) {
	defer close(s.done)
	defer s.conn.Close()
	for {
		typ, p, err := ReadFrame(br)
		if err != nil {
			s.wmu.Lock()
			closed := s.closed
			s.wmu.Unlock()
			if !closed && !errors.Is(err, io.EOF) {
				s.err = fmt.Errorf("shim stream: %w", err)
			}
			return
		}
		var w io.Writer
		switch typ {
		case FrameStdout:
			w = st.Stdout
		case FrameStderr:
			w = st.Stderr
		case FrameExit:
			s.exit, s.err = decodeExit(p)
			return
		}
		if w != nil {
			if _, err := w.Write(p); err != nil {
				s.err = fmt.Errorf("shim stream: write output: %w", err)
				return
			}
		}
	}
}

func (s *Session) stdinLoop(r io.Reader) {
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if s.write(FrameStdin, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			_ = s.write(FrameClose, nil)
			return
		}
	}
}

func (s *Session) write(typ byte, p []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	return WriteFrame(s.conn, typ, p)
}

// Resize sets the size of the session's terminal (exec) or the container's
// (attach).
func (s *Session) Resize(height, width uint16) error {
	return s.write(FrameResize, ResizePayload(height, width))
}

// CloseStdin signals the end of stdin.
func (s *Session) CloseStdin() error { return s.write(FrameClose, nil) }

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Wait waits for the session to end and returns the exit the shim reported
// (nil when the session ended without one: detached, or the shim vanished).
func (s *Session) Wait(ctx context.Context) (*Exit, error) {
	select {
	case <-s.done:
		return s.exit, s.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close detaches: it ends the session without affecting the process.
func (s *Session) Close() error {
	s.wmu.Lock()
	s.closed = true
	s.wmu.Unlock()
	err := s.conn.Close()
	<-s.done
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func decodeExit(p []byte) (*Exit, error) {
	var e Exit
	if err := json.Unmarshal(p, &e); err != nil {
		return nil, fmt.Errorf("%w: exit frame: %v", ErrProtocol, err)
	}
	return &e, nil
}
