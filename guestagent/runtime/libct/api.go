// Package libct is berth's low-level OCI container runtime: it turns an OCI
// bundle (config.json + rootfs) into a running container with namespaces,
// mounts, pivot_root, capabilities, rlimits and cgroups, following runc's
// create/start/state/kill/delete life cycle. `berth-agent oci` is a
// runc-compatible CLI over it; the container manager calls it in-process.
//
// The agent binary doubles as container init: Create re-executes it (through
// a private read-only mount of the binary, or a sealed memfd copy where that
// is unavailable, so a container can never overwrite the host binary) with
// InitArg, and the init half finishes the set-up inside the new namespaces,
// waits on the exec fifo, then execs the user process. Exec forks from a
// thread that joined the container's namespaces (the mount namespace is
// joined by the child itself, before anything else); seccomp profiles are
// compiled to BPF in Go (amd64 and arm64).
package libct

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// InitArg is the argv[1] with which the agent binary is re-executed as
// container init (or as the set-up half of an exec'd process).
const InitArg = "init"

// Sentinel errors.
var (
	ErrNotExist    = errors.New("libct: container does not exist")
	ErrExist       = errors.New("libct: container already exists")
	ErrNotRunning  = errors.New("libct: container is not running")
	ErrNotCreated  = errors.New("libct: container is not in created state")
	ErrInvalidSpec = errors.New("libct: invalid runtime spec")
	// ErrInvalidID reports a container id that is not [A-Za-z0-9_+.-]+.
	ErrInvalidID = errors.New("libct: invalid container id")
	// ErrRunning reports a Delete without force of a running container.
	ErrRunning = errors.New("libct: container is running")
	// ErrNotSupported reports what this system cannot do: every operation
	// outside Linux, seccomp outside amd64/arm64, Exec into a container
	// with its own user namespace.
	ErrNotSupported = errors.New("libct: not supported on this system")
)

// Stdio are the files handed to a container process as fds 0, 1 and 2 when it
// has no terminal. A nil file means /dev/null.
type Stdio struct {
	Stdin, Stdout, Stderr *os.File
}

// CreateOpts are options of Create.
type CreateOpts struct {
	// Stdio is used when spec.Process.Terminal is false.
	Stdio Stdio
	// ConsoleSocket, when spec.Process.Terminal is true, is a unix socket path
	// to which the pty master is sent with SCM_RIGHTS (runc's protocol). When
	// empty, the master is returned in Process.Console instead.
	ConsoleSocket string
	// PidFile, if set, receives the init pid (written atomically).
	PidFile string
	// NoPivot uses MS_MOVE+chroot instead of pivot_root (rootfs on ramfs).
	NoPivot bool
}

// ExecOpts are options of Exec.
type ExecOpts struct {
	Stdio         Stdio
	ConsoleSocket string
	PidFile       string
}

// Process is a process started by Create or Exec. When the caller is its
// parent (always for in-process use), Wait reaps it.
type Process struct {
	Pid int
	// Console is the pty master when the process has a terminal and no
	// ConsoleSocket was given; the caller owns it.
	Console *os.File
	proc    *os.Process
}

// Wait waits for the process to exit and returns its wait status.
func (p *Process) Wait() (syscall.WaitStatus, error) {
	return p.wait()
}

// Runtime manages containers whose state lives in directories under Root
// (runc's --root, default /run/berth/oci).
type Runtime struct {
	Root   string
	Logger *slog.Logger
}

// Create sets up container id from the bundle directory: it validates the
// spec (ociVersion up to 1.3.0), creates the namespaces, cgroup, mounts and
// rootfs, and leaves init blocked on the exec fifo (status "created").
func (r *Runtime) Create(ctx context.Context, id, bundle string, opts CreateOpts) (*Process, error) {
	return r.create(ctx, id, bundle, opts)
}

// Start releases a created container's init to exec the user process.
func (r *Runtime) Start(ctx context.Context, id string) error {
	return r.start(ctx, id)
}

// State returns the runtime-spec state of container id
// (status creating|created|running|stopped).
func (r *Runtime) State(id string) (*specs.State, error) {
	return r.state(id)
}

// List returns the states of all containers under Root.
func (r *Runtime) List() ([]*specs.State, error) {
	return r.list()
}

// Kill sends sig to the container's init, or with all to every process in
// its cgroup.
func (r *Runtime) Kill(id string, sig syscall.Signal, all bool) error {
	return r.kill(id, sig, all)
}

// Exec starts proc inside the running container id, joining every one of its
// namespaces (mount namespace included) and its cgroup, with proc's user,
// capabilities, rlimits, no_new_privileges, env and cwd. A proc without
// capabilities gets the container's; the container's seccomp filter applies.
func (r *Runtime) Exec(ctx context.Context, id string, proc *specs.Process, opts ExecOpts) (*Process, error) {
	return r.exec(ctx, id, proc, opts)
}

// Delete removes a stopped container's cgroup and state; with force it
// SIGKILLs a running one first. Deleting leaves no mount, cgroup or process.
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	return r.delete(ctx, id, force)
}

// InitMain is the body of the re-executed init (argv[1] == InitArg). It
// returns the exit code for main to exit with, and does not return at all on
// success (it execs the user process).
func InitMain() int {
	return initMain()
}
