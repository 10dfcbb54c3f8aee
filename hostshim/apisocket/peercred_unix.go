//go:build linux || darwin

package apisocket

import (
	"fmt"
	"net"
)

// peerUID is the uid of the process at the other end of a unix socket, as
// the kernel reports it (fdUID is the per-OS socket option).
func peerUID(c net.Conn) (int, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, fmt.Errorf("%T: %w", c, errNoPeerCred)
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var uid int
	var serr error
	if err := rc.Control(func(fd uintptr) { uid, serr = fdUID(int(fd)) }); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	return uid, nil
}
