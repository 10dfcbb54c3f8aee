// Package shim is berth's per-container monitor: a small process (the agent
// binary re-executed with argv[1] "shim" and argv[2] the container directory)
// that owns one container's init for its whole life, so that the agent can
// restart without losing the container, its output or its exit code.
//
// The shim starts in its own session (setsid), detached from the agent, and
// marks itself a child subreaper. It reads its Config from shim.json in the
// container directory, creates the container through libct in-process (init
// is the shim's child and the shim reaps it), copies the container's stdout
// and stderr (pipes, or the pty master with a terminal) into the json-file log
// and to every attached client, serves the socket described below, and when
// init exits writes exit.json (exit code as Docker reports it: the code, or
// 128+signal; OOMKilled from the container's cgroup) atomically into the
// container directory, deletes the container from libct, answers its waiters
// and exits.
//
// # Start-up handshake
//
// The agent passes the write end of a pipe as fd 3. After libct Create the
// shim listens on the socket and writes one JSON line {"pid":N} (the container
// is then "created": init waits for the start request) or {"error":"…"}, then
// closes fd 3. The agent connects the clients that attached before start and
// then sends the start request, so no output is lost.
//
// # Socket protocol
//
// The shim listens on the unix socket shim.sock in the container directory
// (paths longer than a sockaddr allows are reached through /proc/self/fd/N of
// the directory). Each connection carries one request: the client writes one
// JSON line (Request), the shim answers with one JSON line (Response, Error
// set on failure, then the shim closes the connection). Requests:
//
//	start   release init (created → running); Response.Pid is init's pid
//	state   Response.Status is created|running|stopped, Response.Pid, Response.Exit once stopped
//	kill    send Request.Signal to init (Request.All: to every process of the container)
//	resize  set the container terminal's size to Request.Height × Request.Width
//	wait    then, when init has exited, one Exit frame
//	attach  then frames both ways, until the container exits (Exit frame) or the client leaves
//	exec    run Request.Process in the container; Response.Pid; then frames, ending with an Exit frame
//
// After the answer to wait, attach and exec, both sides speak in frames: one
// byte of type, a 4-byte big-endian payload length (at most MaxFrame), then the
// payload. Types:
//
//	0 stdin    client → shim: bytes for the process's stdin
//	1 stdout   shim → client: output (all output, when there is a terminal)
//	2 stderr   shim → client: error output
//	3 close    client → shim: end of stdin (EOF); an attach of a StdinOnce container closes the container's stdin when its first stdin client leaves
//	4 resize   client → shim: 4 bytes, height and width as big-endian uint16
//	5 exit     shim → client: JSON Exit; the shim then closes the connection
//
// An attach receives the output produced after it was accepted; earlier
// output is in the log. A slow attach client whose backlog exceeds a limit is
// disconnected rather than stall the container. An exec keeps running when its
// client leaves.
package shim
