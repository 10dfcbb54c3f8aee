package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// ErrUnsupported is returned by dialers this OS does not have (AF_VSOCK outside Linux).
var ErrUnsupported = errors.ErrUnsupported

// DialTCP returns a Dialer for the agent at a TCP address (QEMU user-net hostfwd on 127.0.0.1:port).
func DialTCP(addr string) Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("dial tcp %s: %w", addr, err)
		}
		return c, nil
	}
}

// DialUnix returns a Dialer for the agent at a unix socket (native mode, tests).
func DialUnix(path string) Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", path)
		if err != nil {
			return nil, fmt.Errorf("dial unix %s: %w", path, err)
		}
		return c, nil
	}
}

// DialVsock returns a Dialer for the agent at AF_VSOCK context cid, port (a Linux host with vhost-vsock).
// Outside Linux the Dialer fails with ErrUnsupported.
func DialVsock(cid, port uint32) Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		c, err := dialVsock(ctx, cid, port)
		if err != nil {
			return nil, fmt.Errorf("dial vsock %d:%d: %w", cid, port, err)
		}
		return c, nil
	}
}
