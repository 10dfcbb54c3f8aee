package shim

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// maxSockPath is the longest path a sockaddr_un holds, with its NUL.
const maxSockPath = 107

// withShortPath calls fn with a path naming file name in dir that fits in a
// sockaddr_un: the plain path when it fits, else /proc/self/fd/N/name through
// an O_PATH descriptor of dir (valid only during fn).
func withShortPath(dir, name string, fn func(path string) error) error {
	p := filepath.Join(dir, name)
	if len(p) <= maxSockPath {
		return fn(p)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	return fn(fmt.Sprintf("/proc/self/fd/%d/%s", fd, name))
}

func dialSocket(ctx context.Context, dir string) (net.Conn, error) {
	var conn net.Conn
	err := withShortPath(dir, SocketFile, func(p string) error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, "unix", p)
		return err
	})
	return conn, err
}

// listenSocket listens on the socket of dir, replacing a stale one.
func listenSocket(dir string) (*net.UnixListener, error) {
	_ = os.Remove(filepath.Join(dir, SocketFile))
	var l *net.UnixListener
	err := withShortPath(dir, SocketFile, func(p string) error {
		var err error
		l, err = net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", filepath.Join(dir, SocketFile), err)
	}
	// The listener's name may be a /proc/self/fd path that is gone after
	// withShortPath: remove the socket file ourselves on close.
	l.SetUnlinkOnClose(false)
	return l, nil
}
