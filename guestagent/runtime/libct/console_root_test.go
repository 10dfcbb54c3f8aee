//go:build root && linux

package libct

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

func listenUnix(path string) (*net.UnixListener, error) {
	return net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
}

// acceptConsole receives one pty master the way runc's recvtty does.
func acceptConsole(ln *net.UnixListener) (string, *os.File, error) {
	c, err := ln.AcceptUnix()
	if err != nil {
		return "", nil, err
	}
	defer c.Close()
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return "", nil, err
	}
	fd, err := parseRights(oob[:oobn])
	if err != nil {
		return "", nil, fmt.Errorf("rights: %w", err)
	}
	return string(buf[:n]), os.NewFile(uintptr(fd), string(buf[:n])), nil
}
