//go:build unix

package apisocket

import (
	"net"
	"syscall"
)

// listenUnix creates the socket under umask 0177 so that it is never, even briefly, accessible to others.
// (umask is process-wide; the hostagent creates its sockets at start-up, before serving.)
func listenUnix(path string) (net.Listener, error) {
	old := syscall.Umask(0o177)
	defer syscall.Umask(old)
	return net.Listen("unix", path)
}
