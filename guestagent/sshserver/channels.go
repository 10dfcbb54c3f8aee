package sshserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"

	"github.com/berth-dev/berth/guestagent/sshwire"
	"golang.org/x/crypto/ssh"
)

// streamLocal serves direct-streamlocal@openssh.com: a connection to one of the allowed unix sockets.
func (s *Server) streamLocal(nc ssh.NewChannel, log *slog.Logger) {
	var p sshwire.StreamLocalOpen
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "malformed direct-streamlocal payload")
		return
	}
	path := filepath.Clean(p.SocketPath)
	if p.SocketPath == "" || !s.allow[path] {
		log.Warn("streamlocal target not allowed", "path", p.SocketPath)
		_ = nc.Reject(ssh.Prohibited, "socket path not allowed")
		return
	}
	c, err := s.dial(ChannelStreamLocal, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	})
	if err != nil {
		log.Info("streamlocal dial failed", "path", path, "err", err)
		_ = nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	s.accept(nc, c, log)
}

// directTCPIP serves direct-tcpip: a TCP connection dialled from the guest.
func (s *Server) directTCPIP(nc ssh.NewChannel, log *slog.Logger) {
	var p sshwire.DirectTCPIPOpen
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil || p.Port > 65535 {
		_ = nc.Reject(ssh.ConnectionFailed, "malformed direct-tcpip payload")
		return
	}
	addr := net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port)))
	c, err := s.dial(ChannelDirectTCPIP, func(ctx context.Context) (net.Conn, error) {
		return s.cfg.Dial(ctx, "tcp", addr)
	})
	if err != nil {
		log.Info("direct-tcpip dial failed", "addr", addr, "err", err)
		_ = nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	s.accept(nc, c, log)
}

// dial runs a target dial bounded by DialTimeout and by the server's life.
func (s *Server) dial(what string, dial func(ctx context.Context) (net.Conn, error)) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
	defer cancel()
	c, err := dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s dial: %w", what, err)
	}
	return c, nil
}

// accept accepts nc and relays it to c.
func (s *Server) accept(nc ssh.NewChannel, c net.Conn, log *slog.Logger) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		log.Debug("channel accept failed", "err", err)
		c.Close()
		return
	}
	relay(s.ctx, ch, reqs, c)
}
