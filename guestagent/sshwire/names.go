package sshwire

// Channel types (RFC 4254, OpenSSH PROTOCOL and berth's own) that the agent serves and the host opens.
const (
	// ChannelSession is a shell or command ("shell", "exec", "pty-req", … requests), for `berth ssh`.
	ChannelSession = "session"
	// ChannelDirectTCPIP is a TCP connection dialled inside the guest; payload [DirectTCPIPOpen].
	ChannelDirectTCPIP = "direct-tcpip"
	// ChannelStreamLocal is a connection to a unix socket inside the guest; payload [StreamLocalOpen].
	ChannelStreamLocal = "direct-streamlocal@openssh.com"
	// ChannelUDP carries UDP datagrams to a target dialled inside the guest; payload [UDPOpen]. Every
	// datagram in either direction is a frame: a 2-byte big-endian length followed by that many bytes
	// (see [ReadDatagram], [AppendDatagram]).
	ChannelUDP = "berth-udp@berth.dev"
)

// RequestKeepAlive is the global request both ends send to detect a dead link (as OpenSSH does); a peer
// answers it, successfully or not, as long as it is alive.
const RequestKeepAlive = "keepalive@openssh.com"

// StreamLocalOpen is the open payload of ChannelStreamLocal (OpenSSH PROTOCOL, section 2.4).
type StreamLocalOpen struct {
	SocketPath string
	Reserved0  string
	Reserved1  uint32
}

// DirectTCPIPOpen is the open payload of ChannelDirectTCPIP (RFC 4254, section 7.2).
type DirectTCPIPOpen struct {
	Host       string
	Port       uint32
	OriginHost string
	OriginPort uint32
}

// UDPOpen is the open payload of ChannelUDP: the target the guest dials.
type UDPOpen struct {
	Host string
	Port uint32
}
