//go:build unix

package transport

import (
	"context"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/berth-dev/berth/guestagent/sshwire"
)

// sendHandoff sends msg with conn's socket attached over a new connection to the handoff socket and reads
// the reply. Failures before the descriptor is sent wrap ErrNoHandoff; after it, the outcome is the
// agent's reply, and a missing reply is an error that is not a fallback (the agent may own the socket).
func sendHandoff(ctx context.Context, socket string, conn net.Conn, msg []byte) error {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return fmt.Errorf("%w: %T has no descriptor", ErrNoHandoff, conn)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoHandoff, err)
	}
	var d net.Dialer
	hc, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoHandoff, err)
	}
	defer hc.Close()
	uc := hc.(*net.UnixConn)
	stop := context.AfterFunc(ctx, func() { uc.Close() })
	defer stop()
	var werr error
	if err := raw.Control(func(fd uintptr) {
		_, _, werr = uc.WriteMsgUnix(msg, syscall.UnixRights(int(fd)), nil)
	}); err != nil {
		return fmt.Errorf("%w: %w", ErrNoHandoff, err)
	}
	if werr != nil {
		return fmt.Errorf("%w: send: %w", ErrNoHandoff, werr)
	}
	reply, err := io.ReadAll(io.LimitReader(uc, 2048))
	if err != nil && len(reply) == 0 {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("no handoff reply: %w", err)
	}
	return sshwire.ParseHandoffReply(reply)
}
