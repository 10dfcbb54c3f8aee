package sshwire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Connection handoff: the fast path for published ports when the host side and the agent share a kernel
// (the native driver). Instead of carrying a forwarded connection's bytes through an SSH channel, the host
// passes the accepted socket itself (SCM_RIGHTS) over the agent's handoff unix socket; the agent dials the
// target and relays the two sockets in the kernel (splice). The host then closes its copy and is out of
// the data path.
//
// Authorisation stays with SSH: the token that every handoff must carry is only handed out as the reply to
// the global request RequestHandoffToken on an authenticated SSH connection. The handoff socket is also
// created 0600.
//
// One handoff is one unix connection: the host sends a single message (MarshalHandoff) with exactly one
// file descriptor attached, the agent answers one reply (AppendHandoffReply) and closes.

// RequestHandoffToken is the global request for the handoff token. An agent that serves handoffs replies
// true with the token (HandoffTokenLen bytes) as payload; any other answer means "no handoff here".
const RequestHandoffToken = "handoff-token@berth.dev"

// HandoffTokenLen is the length of a handoff token.
const HandoffTokenLen = 32

// handoffMagic starts every handoff message (and versions it).
const handoffMagic = "BHO1"

// MaxHandoffMessage bounds a handoff message: magic, token, network and address.
const MaxHandoffMessage = len(handoffMagic) + HandoffTokenLen + 1 + 255 + 2 + 1024

// Handoff reply codes.
const (
	HandoffOK        byte = 0 // the agent took the socket and relays it to the connected target
	HandoffDialError byte = 1 // the target could not be dialled; the connection should be closed
	HandoffRefused   byte = 2 // bad token, malformed message or no descriptor: fall back to SSH
)

// Errors of the handoff exchange.
var (
	// ErrHandoffMalformed: a handoff message or reply that does not parse.
	ErrHandoffMalformed = errors.New("malformed handoff message")
	// ErrHandoffRefused: the agent refused the handoff (token, message or descriptor); the connection is
	// still the caller's, which may carry it over SSH instead.
	ErrHandoffRefused = errors.New("handoff refused")
	// ErrHandoffDial: the agent took part but could not dial the target; the connection should be closed,
	// as a failed direct-tcpip dial would.
	ErrHandoffDial = errors.New("handoff target dial failed")
)

// Handoff is a handoff message: the token and the target the agent dials for the attached socket.
type Handoff struct {
	Token   []byte
	Network string // "tcp"
	Addr    string // host:port as the agent dials it
}

// MarshalHandoff encodes h: magic, token, network (1-byte length) and address (2-byte big-endian length).
func MarshalHandoff(h Handoff) ([]byte, error) {
	if len(h.Token) != HandoffTokenLen || len(h.Network) == 0 || len(h.Network) > 255 || len(h.Addr) == 0 || len(h.Addr) > 1024 {
		return nil, fmt.Errorf("%w: token %d bytes, network %q, address of %d bytes", ErrHandoffMalformed, len(h.Token), h.Network, len(h.Addr))
	}
	b := make([]byte, 0, len(handoffMagic)+HandoffTokenLen+1+len(h.Network)+2+len(h.Addr))
	b = append(b, handoffMagic...)
	b = append(b, h.Token...)
	b = append(b, byte(len(h.Network)))
	b = append(b, h.Network...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Addr)))
	return append(b, h.Addr...), nil
}

// ParseHandoff decodes a message written by MarshalHandoff; anything else, including trailing bytes, is
// ErrHandoffMalformed.
func ParseHandoff(b []byte) (Handoff, error) {
	var h Handoff
	if len(b) < len(handoffMagic)+HandoffTokenLen+1 || string(b[:len(handoffMagic)]) != handoffMagic {
		return h, fmt.Errorf("%w: bad header", ErrHandoffMalformed)
	}
	b = b[len(handoffMagic):]
	h.Token, b = b[:HandoffTokenLen:HandoffTokenLen], b[HandoffTokenLen:]
	n := int(b[0])
	b = b[1:]
	if n == 0 || len(b) < n+2 {
		return h, fmt.Errorf("%w: bad network", ErrHandoffMalformed)
	}
	h.Network, b = string(b[:n]), b[n:]
	n = int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n == 0 || len(b) != n {
		return h, fmt.Errorf("%w: bad address", ErrHandoffMalformed)
	}
	h.Addr = string(b)
	return h, nil
}

// AppendHandoffReply appends the reply with code and, unless the code is HandoffOK, a message (cut to
// 1024 bytes).
func AppendHandoffReply(dst []byte, code byte, msg string) []byte {
	dst = append(dst, code)
	if code == HandoffOK {
		return dst
	}
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	return append(dst, msg...)
}

// ParseHandoffReply turns a reply into nil (HandoffOK) or an error wrapping ErrHandoffDial or
// ErrHandoffRefused with the agent's message.
func ParseHandoffReply(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: empty reply", ErrHandoffMalformed)
	}
	switch b[0] {
	case HandoffOK:
		if len(b) != 1 {
			return fmt.Errorf("%w: trailing bytes after OK", ErrHandoffMalformed)
		}
		return nil
	case HandoffDialError:
		return fmt.Errorf("%w: %s", ErrHandoffDial, b[1:])
	case HandoffRefused:
		return fmt.Errorf("%w: %s", ErrHandoffRefused, b[1:])
	}
	return fmt.Errorf("%w: reply code %d", ErrHandoffMalformed, b[0])
}
