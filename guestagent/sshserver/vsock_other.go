//go:build !linux

package sshserver

import "net"

func listenVsock(uint32) (net.Listener, error) {
	return nil, ErrUnsupported
}
