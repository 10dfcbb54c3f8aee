package sshserver

// Payloads of channel opens and channel requests (RFC 4254, OpenSSH PROTOCOL), decoded with ssh.Unmarshal.

// streamLocalOpen is the direct-streamlocal@openssh.com open payload.
type streamLocalOpen struct {
	SocketPath string
	Reserved0  string
	Reserved1  uint32
}

// directTCPIPOpen is the direct-tcpip open payload.
type directTCPIPOpen struct {
	Host       string
	Port       uint32
	OriginHost string
	OriginPort uint32
}

// udpOpen is the ChannelUDP open payload.
type udpOpen struct {
	Host string
	Port uint32
}

type ptyRequest struct {
	Term    string
	Columns uint32
	Rows    uint32
	Width   uint32
	Height  uint32
	Modes   string
}

type windowChange struct {
	Columns uint32
	Rows    uint32
	Width   uint32
	Height  uint32
}

type envRequest struct {
	Name  string
	Value string
}

type execRequest struct {
	Command string
}

type signalRequest struct {
	Signal string
}

type exitStatus struct {
	Status uint32
}

type exitSignal struct {
	Signal     string
	CoreDumped bool
	Error      string
	Lang       string
}
