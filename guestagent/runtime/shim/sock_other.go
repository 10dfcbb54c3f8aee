//go:build !linux

package shim

import (
	"context"
	"net"
	"path/filepath"
)

func dialSocket(ctx context.Context, dir string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", filepath.Join(dir, SocketFile))
}
