package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/berth-dev/berth/guestagent/sshwire"
)

// ErrNoHandoff: connection handoff is not available (no handoff socket configured or reachable, an agent
// that hands out no token, or an OS that cannot pass descriptors). The connection is untouched; carry it
// over SSH (DialTCP) instead.
var ErrNoHandoff = errors.New("transport: connection handoff not available")

// handoffTimeout bounds one handoff exchange when ctx has no earlier deadline.
const handoffTimeout = 15 * time.Second

// Handoff passes conn, a TCP connection accepted on this host, to the agent, which dials addr inside the
// guest and relays the two sockets itself (sshwire's handoff protocol): the bytes then bypass the SSH
// connection and this process entirely. The token comes from the agent over the authenticated SSH
// connection.
//
// conn is never closed here; after Handoff returns the caller closes its copy, except when
// HandoffFallback(err) says the agent did not take it, in which case the caller may still carry it over
// SSH. An error wrapping sshwire.ErrHandoffDial means the target is unreachable.
func (c *Client) Handoff(ctx context.Context, conn net.Conn, addr string) error {
	if c.cfg.HandoffSocket == "" {
		return ErrNoHandoff
	}
	tok, err := c.handoffToken(ctx)
	if err != nil {
		return err
	}
	msg, err := sshwire.MarshalHandoff(sshwire.Handoff{Token: tok, Network: "tcp", Addr: addr})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoHandoff, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, handoffTimeout)
		defer cancel()
	}
	if err := sendHandoff(ctx, c.cfg.HandoffSocket, conn, msg); err != nil {
		return fmt.Errorf("hand off connection to %s: %w", addr, err)
	}
	return nil
}

// HandoffFallback reports whether a Handoff error left the connection with the caller (nothing was
// handed over), so that it may be carried over SSH instead.
func HandoffFallback(err error) bool {
	return errors.Is(err, ErrNoHandoff) || errors.Is(err, sshwire.ErrHandoffRefused)
}

// handoffToken returns the current link's handoff token, asking the agent once per SSH connection.
func (c *Client) handoffToken(ctx context.Context) ([]byte, error) {
	l, err := c.get(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoHandoff, err)
	}
	l.handoffMu.Lock()
	defer l.handoffMu.Unlock()
	switch {
	case l.handoffToken != nil:
		return l.handoffToken, nil
	case l.handoffNone:
		return nil, ErrNoHandoff
	}
	ok, tok, err := l.c.SendRequest(sshwire.RequestHandoffToken, true, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: token request: %w", ErrNoHandoff, err)
	}
	if !ok || len(tok) != sshwire.HandoffTokenLen {
		l.handoffNone = true
		c.log.Info("the agent does not take connection handoffs; forwarding over SSH")
		return nil, ErrNoHandoff
	}
	l.handoffToken = tok
	return tok, nil
}
