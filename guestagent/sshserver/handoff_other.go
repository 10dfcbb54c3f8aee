//go:build !unix

package sshserver

import "net"

func (s *Server) serveHandoff(l net.Listener) error {
	l.Close()
	return ErrUnsupported
}
