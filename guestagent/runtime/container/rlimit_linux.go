package container

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var rlimitNums = map[string]int{
	"RLIMIT_CPU": unix.RLIMIT_CPU, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_DATA": unix.RLIMIT_DATA,
	"RLIMIT_STACK": unix.RLIMIT_STACK, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_NOFILE": unix.RLIMIT_NOFILE,
	"RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_AS": unix.RLIMIT_AS,
}

// fitRlimits lowers the spec's rlimits to the agent's own hard limits when
// the agent cannot raise them (no CAP_SYS_RESOURCE, e.g. a sandboxed or
// unprivileged agent): setrlimit would otherwise fail the container's start.
func fitRlimits(spec *specs.Spec) {
	if spec.Process == nil || len(spec.Process.Rlimits) == 0 || hasCapSysResource() {
		return
	}
	clampRlimits(spec.Process.Rlimits, func(typ string) (uint64, bool) {
		n, ok := rlimitNums[typ]
		if !ok {
			return 0, false
		}
		var rl unix.Rlimit
		if unix.Getrlimit(n, &rl) != nil {
			return 0, false
		}
		return rl.Max, true
	})
}

func hasCapSysResource() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[0].Effective&(1<<unix.CAP_SYS_RESOURCE) != 0
}
