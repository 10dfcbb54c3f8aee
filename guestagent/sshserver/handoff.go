package sshserver

import (
	"crypto/subtle"
	"log/slog"
	"net"

	"github.com/berth-dev/berth/guestagent/sshwire"
	"golang.org/x/crypto/ssh"
)

// ServeHandoff accepts connection handoffs (sshwire's handoff protocol) on l, a unix socket listener
// (ListenUnix), until the server is closed. From the first call on, authenticated SSH clients get the
// handoff token from a RequestHandoffToken global request. Each handoff carries a TCP socket accepted on
// the host; the server dials the named target with Config.Dial, answers, and relays the two sockets in the
// kernel until both directions end (half-close kept, Close aborts). It returns ErrServerClosed after
// Shutdown or Close, and ErrUnsupported where unix sockets cannot carry descriptors.
func (s *Server) ServeHandoff(l net.Listener) error {
	return s.serveHandoff(l)
}

// handoffToken answers a RequestHandoffToken request: the token once ServeHandoff runs, a refusal before.
func (s *Server) handoffToken(r *ssh.Request) {
	if !r.WantReply {
		return
	}
	if s.handoffOn.Load() {
		_ = r.Reply(true, s.token)
		return
	}
	_ = r.Reply(false, nil)
}

// checkHandoff validates a handoff message against the server's token; it returns the parsed message or a
// reason for the refusal.
func (s *Server) checkHandoff(msg []byte, log *slog.Logger) (sshwire.Handoff, string) {
	h, err := sshwire.ParseHandoff(msg)
	if err != nil {
		return h, err.Error()
	}
	if subtle.ConstantTimeCompare(h.Token, s.token) != 1 {
		log.Warn("handoff with a wrong token refused")
		return h, "wrong token"
	}
	if h.Network != "tcp" {
		return h, "unsupported network " + h.Network
	}
	return h, ""
}
