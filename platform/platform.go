// Package platform defines the interface between berth's host side and the machine that runs the guest agent:
// a VM (qemu, lima), Windows' HCS, or, on a Linux host, the agent as a local process in its own namespaces
// (native). DESIGN.md §7.
//
// A [Driver] manages one instance. It is composed of small interfaces ([Lifecycle], [Prober], [Dialer]);
// drivers may implement optional capabilities ([Preflighter], [AgentLogger]) that callers discover with a type
// assertion. Every driver passes the conformance suite in package platformtest.
//
// Contexts bound operations, never an instance's life: Start returns once the agent answers on its SSH
// endpoint, and the VM or agent process keeps running after the caller (the CLI) exits. Stop and Delete find
// it again from state the driver keeps in the instance directory.
package platform

import (
	"context"
	"errors"
	"net"
)

// Errors shared by every driver.
var (
	// ErrNotCreated: the operation needs Create first (or the instance was deleted).
	ErrNotCreated = errors.New("platform: instance not created")
	// ErrNotRunning: the operation needs a running instance (Dial on a stopped one).
	ErrNotRunning = errors.New("platform: instance not running")
	// ErrUnsupported: the driver does not run on this OS or architecture.
	ErrUnsupported = errors.New("platform: driver not supported here")
	// ErrPrivilege: the driver needs privileges the caller lacks (root for native).
	ErrPrivilege = errors.New("platform: insufficient privilege")
	// ErrAgentFailed: the agent (or VM) exited or never became ready.
	ErrAgentFailed = errors.New("platform: agent failed")
)

// Instance is what the host tells a driver about an instance. The driver keeps all of its own state (pid
// files, disks, logs) inside Dir.
type Instance struct {
	// Name is the instance name ("default").
	Name string
	// Dir is the instance directory (mode 0700), owned by the host's instance store.
	Dir string
	// HostKeyFile is the agent's SSH host private key (PEM, mode 0600), generated and pinned by the host;
	// the driver hands it to the agent.
	HostKeyFile string
	// AuthorizedKeysFile lists the client keys the agent accepts (authorized_keys form).
	AuthorizedKeysFile string
	// CPUs is the number of virtual CPUs (VM drivers); 0 means the driver's default.
	CPUs int
	// MemoryMiB is the VM memory (VM drivers); 0 means the driver's default.
	MemoryMiB int
}

// State is the coarse state of an instance.
type State string

// States reported by Status.
const (
	// StateNotCreated: Create has not run (or Delete has).
	StateNotCreated State = "not-created"
	// StateStopped: created, no agent running.
	StateStopped State = "stopped"
	// StateRunning: the agent is running and its SSH endpoint accepts connections.
	StateRunning State = "running"
	// StateDegraded: the agent process exists but its endpoint does not answer (starting, hung or crashed).
	StateDegraded State = "degraded"
)

// Status describes an instance as the driver sees it.
type Status struct {
	// State is the coarse state.
	State State
	// PID is the agent or VM process on the host; 0 if none (or not meaningful for the driver).
	PID int
	// Endpoint names the agent's SSH endpoint ("unix:/path", "tcp:127.0.0.1:port", …).
	Endpoint string
	// Notes are human-readable remarks (e.g. "no outbound network: slirp4netns not installed").
	Notes []string
}

// Lifecycle creates, starts, stops and deletes an instance. Every method is idempotent: Create on a created
// instance, Start on a running one, Stop on a stopped one and Delete on a deleted one succeed and do nothing.
type Lifecycle interface {
	// Create prepares the driver's state in the instance directory (disks, config). It starts nothing.
	Create(ctx context.Context) error
	// Start boots the VM or agent and returns once the agent's SSH endpoint accepts connections; ctx
	// bounds the wait, not the agent's life. ErrNotCreated before Create.
	Start(ctx context.Context) error
	// Stop shuts the agent down (gracefully, then by force) with every container it runs.
	Stop(ctx context.Context) error
	// Delete stops the instance and removes the driver's state; the instance directory itself belongs to
	// the caller.
	Delete(ctx context.Context) error
}

// Prober reports an instance's state.
type Prober interface {
	// Status reports the state; errors are for failures to find out, not for a stopped instance.
	Status(ctx context.Context) (Status, error)
}

// Dialer opens byte streams to the agent's SSH endpoint (DESIGN.md §2: a transport is an endpoint plus a
// dial func). Its signature matches transport.Dialer.
type Dialer interface {
	// Dial connects to the agent's SSH server; ErrNotRunning if the instance is not running.
	Dial(ctx context.Context) (net.Conn, error)
}

// Driver is one platform's implementation for one instance.
type Driver interface {
	// Name is the driver's name as the CLI spells it ("native", "qemu", …).
	Name() string
	// EngineSocket is the path of the engine's unix socket as the agent sees it: the target of the
	// host's direct-streamlocal channels.
	EngineSocket() string
	Lifecycle
	Prober
	Dialer
}

// Preflighter is an optional capability: a driver that can tell, before anything is created, why it cannot
// run here (missing privileges, binaries or hardware support).
type Preflighter interface {
	// Preflight returns nil if the driver can run, or an error wrapping ErrPrivilege or ErrUnsupported
	// that says what is missing.
	Preflight() error
}

// Handoffer is an optional capability: a driver whose agent shares the host's kernel and accepts
// forwarded connections as passed descriptors (sshwire's handoff protocol), so published ports bypass SSH.
type Handoffer interface {
	// HandoffSocket is the path of the agent's handoff unix socket on this host.
	HandoffSocket() string
}

// AgentLogger is an optional capability: a driver whose agent's (or VM console's) output is kept in a file.
type AgentLogger interface {
	// AgentLog is the path of that file.
	AgentLog() string
}
