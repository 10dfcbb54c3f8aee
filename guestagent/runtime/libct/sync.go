package libct

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Messages on the sync socket (SOCK_SEQPACKET, one message per packet): a
// type byte followed by a payload.
const (
	// msgGo (parent → init): the child is in its cgroup; payload is the
	// state JSON that hooks run by init receive on stdin.
	msgGo byte = 'g'
	// msgHooks (init → parent): mounts are done, run prestart and
	// createRuntime hooks now.
	msgHooks byte = 'h'
	// msgHooksDone (parent → init): those hooks succeeded.
	msgHooksDone byte = 'H'
	// msgConsole (init → parent): payload is the pty slave path; the pty
	// master travels as SCM_RIGHTS.
	msgConsole byte = 'c'
	// msgReady (init → parent): set-up finished; create-mode init now waits
	// on the exec fifo, exec-mode init calls execve.
	msgReady byte = 'r'
	// msgError (either way): payload is the error text.
	msgError byte = 'e'
)

// maxMsg bounds a sync message (the state JSON with its annotations).
const maxMsg = 1 << 16

// encodeMsg frames a message.
func encodeMsg(typ byte, payload []byte) []byte {
	b := make([]byte, 1+len(payload))
	b[0] = typ
	copy(b[1:], payload)
	return b
}

// decodeMsg splits a received packet into type and payload.
func decodeMsg(b []byte) (byte, []byte, error) {
	if len(b) == 0 {
		return 0, nil, fmt.Errorf("empty sync message")
	}
	return b[0], b[1:], nil
}

// initConfig is what init reads from its config pipe.
type initConfig struct {
	// Exec is false for a container's init, true for a process that Exec
	// starts inside a running container.
	Exec bool `json:"exec,omitempty"`
	// ID is the container id.
	ID string `json:"id"`
	// Spec is the container's spec (create mode only).
	Spec *specs.Spec `json:"spec,omitempty"`
	// Process is the process to exec (spec.Process in create mode).
	Process *specs.Process `json:"process"`
	// Rootfs is the absolute root filesystem path (create mode).
	Rootfs string `json:"rootfs,omitempty"`
	// Bundle is the absolute bundle directory: relative bind sources are
	// resolved against it.
	Bundle string `json:"bundle,omitempty"`
	// Seccomp is the container's seccomp profile (both modes: an exec'd
	// process gets the container's filter too).
	Seccomp *specs.LinuxSeccomp `json:"seccomp,omitempty"`
	// NewMountNS is true when the spec has a mount namespace: only then
	// does init build the root filesystem with mounts and pivot_root;
	// otherwise it chroots into Rootfs.
	NewMountNS bool `json:"newMountNS,omitempty"`
	// NoPivot uses MS_MOVE+chroot instead of pivot_root.
	NoPivot bool `json:"noPivot,omitempty"`
	// CgroupNS makes init unshare a cgroup namespace once placed.
	CgroupNS bool `json:"cgroupns,omitempty"`
	// JoinMountNS (exec mode) makes init join the mount namespace passed
	// as fd 5 before anything else. The parent joins every other namespace
	// before forking; the mount namespace is joined by the child so that
	// the re-exec of the sealed binary through /proc/self/fd resolves in the
	// runtime's /proc, not in the container's.
	JoinMountNS bool `json:"joinMountNS,omitempty"`
	// ParentHooks tells init to stop after its mounts for the parent to run
	// prestart and createRuntime hooks.
	ParentHooks bool `json:"parentHooks,omitempty"`
}
