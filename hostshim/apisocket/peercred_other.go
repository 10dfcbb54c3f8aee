//go:build !linux && !darwin

package apisocket

import "net"

// peerUID: this OS has no peer credentials on unix sockets (Windows: the socket's file ACL, and later a
// named pipe ACL, admit the owner only).
func peerUID(net.Conn) (int, error) { return 0, errNoPeerCred }
