// Package cgroups places container processes in Linux control groups and
// applies OCI resource limits to them: cgroup v2 first (through
// containerd/cgroups/v3/cgroup2), with a cgroup v1 fallback for hosts that
// still mount per-controller hierarchies (like berth's dev machine).
//
// A relative cgroups path is resolved below the calling process's own cgroup
// (per controller on v1), so berth only ever creates child cgroups under its
// own and removes them again.
package cgroups

// CONTRACT FILE (temporary): the helper that owns this package replaces the
// panics with the implementation, keeping signatures and doc comments.

import (
	"errors"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrNotExist reports a cgroup that does not exist (any more).
var ErrNotExist = errors.New("cgroups: cgroup does not exist")

// Mode is the cgroup layout of the machine.
type Mode int

const (
	Unavailable Mode = iota // no usable cgroup filesystem
	V1                      // legacy or hybrid: per-controller hierarchies
	V2                      // unified hierarchy at /sys/fs/cgroup
)

// Stats is a snapshot of a cgroup's usage.
type Stats struct {
	MemoryUsage uint64 // bytes
	MemoryLimit uint64 // bytes; 0 means unlimited
	OOMKills    uint64 // processes killed by the OOM killer in this cgroup
	Pids        uint64 // current number of tasks
	PidsLimit   uint64 // 0 means unlimited
	CPUUsageNS  uint64 // total CPU time consumed, nanoseconds
}

// Manager controls one container's cgroup (on v1: the same relative path in
// every mounted controller).
type Manager interface {
	// Path is the cgroup path as given to New, resolved (absolute, v2 style).
	Path() string
	// Create makes the cgroup (and missing parents) and applies res.
	Create(res *specs.LinuxResources) error
	// Add moves the process pid into the cgroup.
	Add(pid int) error
	// Update applies res to an existing cgroup.
	Update(res *specs.LinuxResources) error
	// Pids lists the processes in the cgroup (and, on v2, its descendants).
	Pids() ([]int, error)
	// Signal sends sig to every process in the cgroup, freezing it first so
	// that no process can fork past the signal.
	Signal(sig syscall.Signal) error
	// Stats reads usage counters.
	Stats() (*Stats, error)
	// OOMKilled reports whether the OOM killer killed a process in the cgroup.
	OOMKilled() (bool, error)
	// Delete removes the cgroup; it waits briefly for exiting tasks and fails
	// if processes remain. Deleting a missing cgroup is not an error.
	Delete() error
}

// Detect reports the cgroup layout mounted at /sys/fs/cgroup.
func Detect() Mode {
	panic("cgroups.Detect: not yet implemented")
}

// New returns a Manager for path, an OCI cgroupsPath: absolute, or relative to
// the calling process's own cgroup. It does not create anything.
func New(path string) (Manager, error) {
	panic("cgroups.New: not yet implemented")
}
