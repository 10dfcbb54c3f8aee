package transport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/berth-dev/berth/guestagent/sshwire"
	"golang.org/x/crypto/ssh"
)

// errNoDeadline is returned by Conn's deadline setters: an SSH channel read cannot be interrupted without
// closing the channel.
var errNoDeadline = errors.New("transport: deadlines not supported on ssh channels")

// Conn is a channel to the agent as a net.Conn. CloseWrite sends EOF (half-close); Done reports the peer
// closing the channel or the SSH link dying. Deadlines are not supported.
type Conn struct {
	ssh.Channel
	laddr, raddr net.Addr
	done         chan struct{}
	closeOnce    sync.Once
}

var _ net.Conn = (*Conn)(nil)

func newConn(ch ssh.Channel, reqs <-chan *ssh.Request, laddr, raddr net.Addr) *Conn {
	c := &Conn{Channel: ch, laddr: laddr, raddr: raddr, done: make(chan struct{})}
	go func() {
		for r := range reqs { // closed when the channel is closed, either way
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
		close(c.done)
	}()
	return c
}

// Close closes the channel; it is safe to call more than once.
func (c *Conn) Close() error {
	err := net.ErrClosed
	c.closeOnce.Do(func() { err = c.Channel.Close() })
	if errors.Is(err, io.EOF) { // the peer closed first
		err = nil
	}
	return err
}

// Done is closed once the channel is closed by the peer, closed locally and acknowledged, or its SSH link
// is gone. Data received before stays readable.
func (c *Conn) Done() <-chan struct{} { return c.done }

func (c *Conn) LocalAddr() net.Addr  { return c.laddr }
func (c *Conn) RemoteAddr() net.Addr { return c.raddr }

func (c *Conn) SetDeadline(time.Time) error      { return c.deadlineErr() }
func (c *Conn) SetReadDeadline(time.Time) error  { return c.deadlineErr() }
func (c *Conn) SetWriteDeadline(time.Time) error { return c.deadlineErr() }

func (c *Conn) deadlineErr() error {
	return &net.OpError{Op: "set", Net: "ssh", Source: c.laddr, Addr: c.raddr, Err: errNoDeadline}
}

// UDPConn is a UDP flow through the agent: each Write sends one datagram, each Read returns one (truncated to
// the buffer, like a UDP socket).
type UDPConn struct {
	*Conn
	rmu, wmu sync.Mutex
	wbuf     []byte
}

// Read reads one datagram into b; the part that does not fit is discarded.
func (u *UDPConn) Read(b []byte) (int, error) {
	u.rmu.Lock()
	defer u.rmu.Unlock()
	return sshwire.ReadDatagram(u.Channel, b)
}

// Write sends b as one datagram.
func (u *UDPConn) Write(b []byte) (int, error) {
	if len(b) > sshwire.MaxDatagram {
		return 0, fmt.Errorf("udp write of %d bytes: %w", len(b), ErrDatagramTooLarge)
	}
	u.wmu.Lock()
	defer u.wmu.Unlock()
	u.wbuf = sshwire.AppendDatagram(u.wbuf[:0], b)
	if _, err := u.Channel.Write(u.wbuf); err != nil {
		return 0, err
	}
	return len(b), nil
}
