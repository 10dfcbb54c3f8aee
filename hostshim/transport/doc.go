// Package transport is the host end of berth's one transport (DESIGN.md §2): an SSH client to the guest
// agent's embedded server over whatever byte stream the platform driver provides.
//
// A driver supplies a [Dialer] (TCP to a QEMU hostfwd port, a unix socket in native mode, AF_VSOCK, …).
// [Client] keeps one SSH connection to the agent: it connects lazily, pins the agent's host key (a mismatch
// fails the handshake with [ErrHostKeyMismatch] before any channel is opened), sends keepalives, and
// reconnects with jittered exponential backoff when the link dies. Its dial methods return connections that
// support half-close. [Forward] is the relay engine of unix-socket and port forwards.
//
// The wire formats, cipher preferences, connection buffering, copy loop and keepalive loop are those of
// package guestagent/sshwire, which the agent's server shares; it is the only guest package the host links.
package transport
