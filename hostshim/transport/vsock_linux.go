package transport

import (
	"context"
	"net"

	"github.com/mdlayher/vsock"
)

func dialVsock(ctx context.Context, cid, port uint32) (net.Conn, error) {
	c, err := vsock.DialContext(ctx, cid, port, nil)
	if err != nil {
		return nil, err
	}
	return c, nil
}
