//go:build unix

package sshserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/berth-dev/berth/guestagent/sshwire"
)

// handoffTimeout bounds a handoff exchange: the message and the target dial.
const handoffTimeout = 10 * time.Second

// maxHandoffFDs is how many descriptors a handoff read makes room for: one is valid, more are read only to
// be closed (a message with several is refused).
const maxHandoffFDs = 4

func (s *Server) serveHandoff(l net.Listener) error {
	if _, ok := l.(*net.UnixListener); !ok {
		l.Close()
		return fmt.Errorf("%w: handoff needs a unix socket listener, not %T", ErrInvalidConfig, l)
	}
	s.handoffOn.Store(true)
	return s.acceptLoop(l, func(c net.Conn) { s.handoff(c.(*net.UnixConn)) })
}

// handoff serves one handoff connection: read the message and its descriptor, check them, dial the target,
// reply, and relay.
func (s *Server) handoff(c *net.UnixConn) {
	log := s.log.With("handoff", c.RemoteAddr().String())
	_ = c.SetDeadline(time.Now().Add(handoffTimeout))
	client, h, why := s.readHandoff(c, log)
	reply := func(code byte, msg string) bool {
		_, err := c.Write(sshwire.AppendHandoffReply(nil, code, msg))
		return err == nil
	}
	if why != "" {
		log.Info("handoff refused", "reason", why)
		if client != nil {
			client.Close()
		}
		reply(sshwire.HandoffRefused, why)
		return
	}
	target, err := s.dial("handoff", func(ctx context.Context) (net.Conn, error) {
		return s.cfg.Dial(ctx, "tcp", h.Addr)
	})
	if err != nil {
		log.Info("handoff dial failed", "addr", h.Addr, "err", err)
		client.Close()
		reply(sshwire.HandoffDialError, err.Error())
		return
	}
	if !reply(sshwire.HandoffOK, "") {
		// The host gave up (its deadline): it keeps its copy and carries the connection itself.
		client.Close()
		target.Close()
		return
	}
	c.Close()
	log.Debug("handoff relaying", "addr", h.Addr)
	sshwire.Relay(s.ctx, client, target)
}

// readHandoff reads one handoff message with exactly one TCP socket attached. It returns the socket as a
// connection (nil if none was usable), the message, and why it is refused ("" when it is not). Every
// descriptor received is closed unless it is returned.
func (s *Server) readHandoff(c *net.UnixConn, log *slog.Logger) (net.Conn, sshwire.Handoff, string) {
	buf := make([]byte, sshwire.MaxHandoffMessage+1)
	oob := make([]byte, syscall.CmsgSpace(4*maxHandoffFDs))
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	fds := unixRights(oob[:oobn])
	var h sshwire.Handoff
	if err != nil {
		closeFDs(fds)
		return nil, h, fmt.Sprintf("read: %v", err)
	}
	if flags&syscall.MSG_CTRUNC != 0 || len(fds) != 1 {
		closeFDs(fds)
		return nil, h, fmt.Sprintf("want exactly one descriptor, got %d (truncated: %v)", len(fds), flags&syscall.MSG_CTRUNC != 0)
	}
	client, err := socketConn(fds[0])
	if err != nil {
		return nil, h, err.Error()
	}
	h, why := s.checkHandoff(buf[:n], log)
	if why != "" {
		client.Close()
		return nil, h, why
	}
	log.Debug("handoff received", "addr", h.Addr, "client", client.RemoteAddr().String())
	return client, h, ""
}

// unixRights returns the descriptors of every SCM_RIGHTS message in oob.
func unixRights(oob []byte) []int {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if r, err := syscall.ParseUnixRights(&m); err == nil {
			fds = append(fds, r...)
		}
	}
	return fds
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

// errNotTCP: a handed-off descriptor that is not a connected TCP socket.
var errNotTCP = errors.New("descriptor is not a connected TCP socket")

// socketConn turns a received descriptor into a connection; it takes ownership of fd (closed on failure)
// and accepts connected TCP sockets only.
func socketConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "handoff")
	defer f.Close() // FileConn holds its own duplicate
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotTCP, err)
	}
	if _, ok := c.(*net.TCPConn); !ok || c.RemoteAddr() == nil {
		c.Close()
		return nil, fmt.Errorf("%w: %T", errNotTCP, c)
	}
	return c, nil
}
