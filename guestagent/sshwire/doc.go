// Package sshwire is what both ends of berth's one transport (DESIGN.md §2) share: the guest agent's SSH
// server (guestagent/sshserver) and the host's SSH client (hostshim/transport).
//
// The two ends live in programs that must not link each other: the agent never imports host packages and
// the host CLI never imports guest packages (cmd/berth's dependency fence allows this package alone from
// guestagent/). What both ends must agree on, or would otherwise repeat, lives here:
//
//   - the wire formats: channel type names, the open payloads of direct-streamlocal@openssh.com,
//     direct-tcpip and [ChannelUDP], the framing of UDP datagrams, the keepalive request name;
//   - the SSH algorithm preferences ([Ciphers]: AES-GCM first on CPUs that accelerate it);
//   - [BufConn], the read-ahead and write batching under the SSH connection;
//   - the pieces of a relay between a channel and a connection: [Copy] (one direction, pooled buffers),
//     [CloseWrite] (half-close), [StopReads] (let received data drain), [Aborter] (close both ends once);
//     each end's relay keeps its own policy for what a failure means;
//   - [KeepAlive], the dead-link detector.
//
// Keep it side-neutral: nothing agent- or host-specific (no engine, runtime, platform or instance code), no
// imports of other berth packages (a test in cmd/berth checks this) and no OS-specific code.
package sshwire
