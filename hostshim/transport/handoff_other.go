//go:build !unix

package transport

import (
	"context"
	"net"
)

// sendHandoff: this OS cannot pass descriptors over unix sockets.
func sendHandoff(context.Context, string, net.Conn, []byte) error { return ErrNoHandoff }
