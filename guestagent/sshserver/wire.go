package sshserver

// Payloads of session channel requests (RFC 4254, section 6), read with ssh.Unmarshal and written with
// ssh.Marshal. Only the server handles them (the host uses x/crypto's ssh.Session); the payloads of channel
// opens, which both ends use, are sshwire's.

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
