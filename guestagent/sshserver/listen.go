package sshserver

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/mdlayher/vsock"
)

// HostCID is the AF_VSOCK context ID of the host; the vsock listener accepts connections from it only.
const HostCID = vsock.Host

// ErrUnsupported is returned by listeners this OS does not have (AF_VSOCK outside Linux).
var ErrUnsupported = errors.ErrUnsupported

// ListenTCP listens on the TCP address addr (host:port).
func ListenTCP(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen tcp %s: %w", addr, err)
	}
	return l, nil
}

// ListenUnix listens on a unix socket at path with mode 0600, creating its directory with mode 0700 if
// needed and replacing a stale socket left by a previous run.
func ListenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("listen unix %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listen unix %s: remove stale socket: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen unix %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("listen unix %s: %w", path, err)
	}
	return l, nil
}

// ListenVsock listens on AF_VSOCK port and accepts connections from the host (HostCID) only; connections from
// any other context are closed at once. It returns ErrUnsupported outside Linux.
func ListenVsock(port uint32) (net.Listener, error) {
	l, err := listenVsock(port)
	if err != nil {
		return nil, fmt.Errorf("listen vsock port %d: %w", port, err)
	}
	return &cidFilter{Listener: l, allow: HostCID}, nil
}

// cidFilter is a listener that drops connections whose peer is not the vsock context allow.
type cidFilter struct {
	net.Listener
	allow uint32
}

func (l *cidFilter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if a, ok := c.RemoteAddr().(*vsock.Addr); ok && a.ContextID == l.allow {
			return c, nil
		}
		c.Close()
	}
}
