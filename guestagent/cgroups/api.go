// Package cgroups places container processes in Linux control groups and
// applies OCI resource limits to them: cgroup v2 first (the only layout in
// berth's VM), with a cgroup v1 fallback for hosts that still mount
// per-controller hierarchies (like berth's dev machine).
//
// A relative cgroups path is resolved below the calling process's own cgroup
// (per controller on v1), so berth only ever creates child cgroups under its
// own and removes them again.
//
// The v2 side writes the interface files itself rather than going through
// containerd/cgroups/v3/cgroup2: it is a handful of writes, it keeps v1 and
// v2 on one code path, and it avoids that package's eBPF and D-Bus
// dependencies in the agent binary.
//
// Resources applied from specs.LinuxResources:
//   - memory: Limit (v2 memory.max; v1 memory.limit_in_bytes), Swap as
//     memory+swap (v2 memory.swap.max = Swap-Limit; v1
//     memory.memsw.limit_in_bytes when swap accounting is on), Reservation
//     (v2 memory.low; v1 memory.soft_limit_in_bytes);
//   - cpu: Shares (v1 cpu.shares; v2 cpu.weight by the usual linear
//     mapping), Quota/Period (v2 cpu.max; v1 cpu.cfs_quota_us and
//     cpu.cfs_period_us), Cpus/Mems (cpuset.cpus/cpuset.mems);
//   - pids: Limit (pids.max);
//   - devices: on v1 only (devices.deny "a", then the rules in order). On v2
//     device control needs an eBPF program, which berth does not load; its
//     containers get a tmpfs /dev holding only the standard nodes.
//
// Other fields (block I/O, hugepages, network, rdma, CPU burst/realtime/idle,
// kernel memory, swappiness) are ignored.
package cgroups

import (
	"errors"
	"strconv"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrNotExist reports a cgroup that does not exist (any more).
var ErrNotExist = errors.New("cgroups: cgroup does not exist")

// ErrUnavailable reports that no usable cgroup filesystem is mounted (or the
// OS has no cgroups at all).
var ErrUnavailable = errors.New("cgroups: no usable cgroup filesystem")

// ErrInvalid reports an invalid cgroups path or resource value.
var ErrInvalid = errors.New("cgroups: invalid argument")

// Mode is the cgroup layout of the machine.
type Mode int

const (
	Unavailable Mode = iota // no usable cgroup filesystem
	V1                      // legacy or hybrid: per-controller hierarchies
	V2                      // unified hierarchy at /sys/fs/cgroup
)

// String names the mode: "unavailable", "v1" or "v2".
func (m Mode) String() string {
	switch m {
	case V1:
		return "v1"
	case V2:
		return "v2"
	case Unavailable:
		return "unavailable"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

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
	return detect()
}

// New returns a Manager for path, an OCI cgroupsPath: absolute, or relative to
// the calling process's own cgroup. It does not create anything.
//
// On v1 a relative path is resolved per controller (the caller may sit in
// different cgroups in different hierarchies) and Path reports the path in
// the memory hierarchy. On v2 the agent itself must live in a leaf cgroup
// (or the root cgroup): a cgroup with processes cannot enable controllers
// for its children ("no internal processes" rule), so Create fails with a
// clear error if the caller's own cgroup has processes and its
// cgroup.subtree_control lacks a controller the children need.
//
// Delete removes only the leaf cgroup (and cgroups found below it), never
// parents that Create made: callers that use nested paths such as
// "berth/<id>" keep the shared "berth" parent.
func New(path string) (Manager, error) {
	return newManager(path)
}
