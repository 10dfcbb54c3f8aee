package libct

import (
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// validateID checks a container id like runc does: a non-empty run of
// letters, digits, '_', '+', '-' and '.', and never "." or "..".
func validateID(id string) error {
	if id == "" || id == "." || id == ".." || len(id) > 1024 {
		return fmt.Errorf("container id %q: %w", id, ErrInvalidID)
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_', c == '+', c == '-', c == '.':
		default:
			return fmt.Errorf("container id %q: %w", id, ErrInvalidID)
		}
	}
	return nil
}

// checkVersion accepts the runtime-spec versions berth implements: 1.0.0 up
// to 1.3.0, with or without a pre-release suffix (-rc.1, -dev, …).
func checkVersion(v string) error {
	core, _, _ := strings.Cut(v, "-")
	core, _, _ = strings.Cut(core, "+")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return fmt.Errorf("ociVersion %q: %w", v, ErrInvalidSpec)
	}
	var n [3]int
	for i, p := range parts {
		x, err := strconv.Atoi(p)
		if err != nil || x < 0 {
			return fmt.Errorf("ociVersion %q: %w", v, ErrInvalidSpec)
		}
		n[i] = x
	}
	if n[0] != 1 || n[1] > 3 || (n[1] == 3 && n[2] > 0) {
		return fmt.Errorf("ociVersion %q is not supported (1.0.0 to 1.3.0): %w", v, ErrInvalidSpec)
	}
	return nil
}

// validateSpec checks what Create needs from a spec before touching the
// system.
func validateSpec(s *specs.Spec) error {
	if err := checkVersion(s.Version); err != nil {
		return err
	}
	if s.Root == nil || s.Root.Path == "" {
		return fmt.Errorf("spec has no root.path: %w", ErrInvalidSpec)
	}
	if err := validateProcess(s.Process); err != nil {
		return err
	}
	if s.Linux == nil {
		return fmt.Errorf("spec has no linux section: %w", ErrInvalidSpec)
	}
	for _, m := range s.Mounts {
		if !strings.HasPrefix(m.Destination, "/") {
			return fmt.Errorf("mount destination %q is not absolute: %w", m.Destination, ErrInvalidSpec)
		}
	}
	seen := map[specs.LinuxNamespaceType]bool{}
	for _, ns := range s.Linux.Namespaces {
		if _, ok := nsFiles[ns.Type]; !ok {
			return fmt.Errorf("namespace type %q: %w", ns.Type, ErrInvalidSpec)
		}
		if seen[ns.Type] {
			return fmt.Errorf("namespace %q given twice: %w", ns.Type, ErrInvalidSpec)
		}
		seen[ns.Type] = true
	}
	if (s.Hostname != "" || s.Domainname != "") && !seen[specs.UTSNamespace] {
		return fmt.Errorf("hostname or domainname without a uts namespace: %w", ErrInvalidSpec)
	}
	for k := range s.Linux.Sysctl {
		if strings.Contains(k, "..") || strings.HasPrefix(k, "/") {
			return fmt.Errorf("sysctl %q: %w", k, ErrInvalidSpec)
		}
	}
	if s.Linux.Personality != nil {
		if _, err := personalityValue(s.Linux.Personality); err != nil {
			return err
		}
	}
	if s.Linux.RootfsPropagation != "" {
		if _, ok := propagationFlags[s.Linux.RootfsPropagation]; !ok {
			return fmt.Errorf("rootfsPropagation %q: %w", s.Linux.RootfsPropagation, ErrInvalidSpec)
		}
	}
	return nil
}

// validateProcess checks a process section of a spec or of an exec.
func validateProcess(p *specs.Process) error {
	if p == nil {
		return fmt.Errorf("spec has no process: %w", ErrInvalidSpec)
	}
	if len(p.Args) == 0 || p.Args[0] == "" {
		return fmt.Errorf("process has no args: %w", ErrInvalidSpec)
	}
	if p.Cwd == "" || !strings.HasPrefix(p.Cwd, "/") {
		return fmt.Errorf("process cwd %q is not absolute: %w", p.Cwd, ErrInvalidSpec)
	}
	if p.Capabilities != nil {
		for _, set := range [][]string{p.Capabilities.Bounding, p.Capabilities.Effective,
			p.Capabilities.Inheritable, p.Capabilities.Permitted, p.Capabilities.Ambient} {
			for _, c := range set {
				if _, ok := capValue(c); !ok {
					return fmt.Errorf("capability %q: %w", c, ErrInvalidSpec)
				}
			}
		}
	}
	if p.IOPriority != nil {
		if _, err := ioprioValue(p.IOPriority); err != nil {
			return err
		}
	}
	for _, rl := range p.Rlimits {
		if _, ok := rlimitValue(rl.Type); !ok {
			return fmt.Errorf("rlimit %q: %w", rl.Type, ErrInvalidSpec)
		}
		if rl.Soft > rl.Hard {
			return fmt.Errorf("rlimit %s: soft %d above hard %d: %w", rl.Type, rl.Soft, rl.Hard, ErrInvalidSpec)
		}
	}
	return nil
}

// nsFiles maps namespace types to their names under /proc/<pid>/ns.
var nsFiles = map[specs.LinuxNamespaceType]string{
	specs.PIDNamespace:     "pid",
	specs.NetworkNamespace: "net",
	specs.MountNamespace:   "mnt",
	specs.IPCNamespace:     "ipc",
	specs.UTSNamespace:     "uts",
	specs.UserNamespace:    "user",
	specs.CgroupNamespace:  "cgroup",
	specs.TimeNamespace:    "time",
}

// capNames lists capabilities in kernel order (value = index).
var capNames = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
	"SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
	"IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
	"LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
	"WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// capValue returns the number of a capability named "CAP_X" (or "X").
func capValue(name string) (int, bool) {
	n := strings.TrimPrefix(strings.ToUpper(name), "CAP_")
	for i, c := range capNames {
		if c == n {
			return i, true
		}
	}
	return 0, false
}

// capMask returns the bit mask of a list of capability names; unknown names
// are skipped (validateProcess rejects them first).
func capMask(names []string) uint64 {
	var m uint64
	for _, n := range names {
		if v, ok := capValue(n); ok {
			m |= 1 << uint(v)
		}
	}
	return m
}

// rlimitNames maps RLIMIT_* names to resource numbers (the same on every
// Linux architecture berth supports).
var rlimitNames = map[string]int{
	"RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
	"RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
	"RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
	"RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

func rlimitValue(name string) (int, bool) {
	v, ok := rlimitNames[name]
	return v, ok
}

// defaultDeviceRules are the device cgroup rules that every container gets
// after its spec's own (as runc and crun do): mknod of any device, and use
// of the nodes that Create makes in /dev and of ptys.
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	i := func(v int64) *int64 { return &v }
	rules := []specs.LinuxDeviceCgroup{
		{Allow: true, Type: "c", Access: "m"},
		{Allow: true, Type: "b", Access: "m"},
	}
	for _, d := range [][2]int64{{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 1}, {5, 2}} {
		rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i(d[0]), Minor: i(d[1]), Access: "rwm"})
	}
	return append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i(136), Access: "rwm"})
}

// withDefaultDevices returns a copy of res whose device rules end with
// defaultDeviceRules and an allow rule for each of the spec's devices.
func withDefaultDevices(res *specs.LinuxResources, devs []specs.LinuxDevice) *specs.LinuxResources {
	var out specs.LinuxResources
	if res != nil {
		out = *res
	}
	out.Devices = append(append([]specs.LinuxDeviceCgroup(nil), out.Devices...), defaultDeviceRules()...)
	for _, d := range devs {
		typ := d.Type
		if typ == "u" {
			typ = "c"
		}
		if typ == "p" {
			continue
		}
		major, minor := d.Major, d.Minor
		out.Devices = append(out.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: &major, Minor: &minor, Access: "rwm"})
	}
	return &out
}

// ioprioValue encodes an I/O priority for ioprio_set(2): class << 13 | data.
func ioprioValue(p *specs.LinuxIOPriority) (int, error) {
	classes := map[specs.IOPriorityClass]int{specs.IOPRIO_CLASS_RT: 1, specs.IOPRIO_CLASS_BE: 2, specs.IOPRIO_CLASS_IDLE: 3}
	c, ok := classes[p.Class]
	if !ok || p.Priority < 0 || p.Priority > 7 {
		return 0, fmt.Errorf("ioPriority %s/%d: %w", p.Class, p.Priority, ErrInvalidSpec)
	}
	return c<<13 | p.Priority, nil
}

// personalityValue returns the personality(2) argument of a domain.
func personalityValue(p *specs.LinuxPersonality) (int, error) {
	switch p.Domain {
	case specs.PerLinux:
		return 0, nil
	case specs.PerLinux32:
		return 0x0008, nil
	}
	return 0, fmt.Errorf("personality domain %q: %w", p.Domain, ErrInvalidSpec)
}
