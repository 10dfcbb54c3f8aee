// Package apisocket serves the instance's Docker API socket on the host (~/.berth/<instance>/docker.sock):
// every accepted connection is relayed, with half-close and backpressure, to a connection the caller dials
// (in the hostagent: a direct-streamlocal channel to the engine socket inside the guest).
//
// Access control is two-fold: the socket is created 0600 in a 0700 directory, and each connection's peer
// credentials are checked where the OS offers them: SO_PEERCRED on Linux, LOCAL_PEERCRED (getpeereid) on
// macOS. Only the owner's uid (and root, which can open the socket anyway) is served. On Windows the API
// will be a named pipe whose ACL admits the owner only (not implemented yet; a unix socket with its file ACL
// is used meanwhile).
package apisocket

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-dev/berth/hostshim/transport"
)

// Errors of this package.
var (
	// ErrInUse: another process serves the socket.
	ErrInUse = errors.New("apisocket: socket in use")
	// ErrPathTooLong: the socket path does not fit in sockaddr_un.
	ErrPathTooLong = errors.New("apisocket: socket path too long")
	// ErrPeerRefused: a connection from another user was refused.
	ErrPeerRefused = errors.New("apisocket: peer refused")
	// errNoPeerCred: this OS cannot tell who the peer is.
	errNoPeerCred = errors.ErrUnsupported
)

// maxSocketPath is the longest path a unix socket may have (sun_path is 104 bytes on macOS, 108 on Linux,
// both including the NUL).
const maxSocketPath = 103

// Listen listens on a unix socket at path, mode 0600, creating its directory with mode 0700. A stale socket
// is replaced; one that still accepts connections is ErrInUse. Connections from a uid other than the
// caller's (or root) are closed at Accept and logged.
func Listen(path string, log *slog.Logger) (net.Listener, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("listen %s: %w (%d bytes, at most %d)", path, ErrPathTooLong, len(path), maxSocketPath)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("listen %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen %s: %w", path, ErrInUse)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listen %s: remove stale socket: %w", path, err)
		}
	}
	l, err := listenUnix(path)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	return FilterPeers(l, AllowOwner(os.Getuid()), log), nil
}

// AllowOwner admits uid owner and root.
func AllowOwner(owner int) func(uid int) bool {
	return func(uid int) bool { return uid == owner || uid == 0 }
}

// FilterPeers wraps a unix-socket listener so that Accept drops connections whose peer uid allow refuses.
// Where the OS cannot report the peer, connections are admitted (the socket's file mode protects them).
func FilterPeers(l net.Listener, allow func(uid int) bool, log *slog.Logger) net.Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &peerFilter{Listener: l, allow: allow, log: log}
}

type peerFilter struct {
	net.Listener
	allow func(int) bool
	log   *slog.Logger
}

func (l *peerFilter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if err := CheckPeer(c, l.allow); err != nil {
			l.log.Warn("refused API connection", "err", err)
			c.Close()
			continue
		}
		return c, nil
	}
}

// CheckPeer returns nil if c's peer uid is allowed (or cannot be known on this OS), an error wrapping
// ErrPeerRefused otherwise.
func CheckPeer(c net.Conn, allow func(uid int) bool) error {
	uid, err := peerUID(c)
	if errors.Is(err, errNoPeerCred) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: peer credentials: %w", ErrPeerRefused, err)
	}
	if !allow(uid) {
		return fmt.Errorf("%w: uid %d", ErrPeerRefused, uid)
	}
	return nil
}

// Serve relays every connection accepted on l to one from dial until ctx ends (ctx.Err()) or l fails; it
// closes l. A failed dial closes the client's connection and is logged.
func Serve(ctx context.Context, l net.Listener, dial func(ctx context.Context) (net.Conn, error), log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return transport.Forward(ctx, l, func(ctx context.Context) (net.Conn, error) {
		c, err := dial(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("API connection: cannot reach the engine", "err", err)
		}
		return c, err
	})
}
