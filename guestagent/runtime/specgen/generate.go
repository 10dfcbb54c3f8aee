package specgen

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// OCIVersion is the ociVersion written into generated specs.
const OCIVersion = "1.2.0"

// Docker's defaults and limits.
const (
	defaultShmSize  = 64 << 20 // /dev/shm
	defaultNofile   = 1048576  // RLIMIT_NOFILE soft and hard
	cpuPeriod       = 100000   // µs, for --cpus
	minMemory       = 6 << 20  // Docker's smallest memory limit
	minNanoCPUs     = 1e7      // 0.01 CPU: a quota of 1000 µs per 100 ms
	minCPUShares    = 2
	maxCPUShares    = 262144
	maxHostnameSize = 64
	defaultRootfs   = "rootfs"
)

// maskedPaths and readonlyPaths are Docker's lists.
var (
	maskedPaths = []string{
		"/proc/asound",
		"/proc/acpi",
		"/proc/interrupts",
		"/proc/kcore",
		"/proc/keys",
		"/proc/latency_stats",
		"/proc/timer_list",
		"/proc/timer_stats",
		"/proc/sched_debug",
		"/proc/scsi",
		"/sys/firmware",
		"/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{
		"/proc/bus",
		"/proc/fs",
		"/proc/irq",
		"/proc/sys",
		"/proc/sysrq-trigger",
	}
)

func i64(v int64) *int64 { return &v }

// defaultDeviceRules is the device cgroup allow list of an unprivileged
// container: Docker's list (deny all; null, zero, random, urandom, tty,
// console; deny fuse) followed by the rules runc adds on its own, which the
// berth runtime does not add implicitly (mknod of any device, full, ptmx,
// /dev/pts/*, tun).
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	rule := func(allow bool, typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: allow, Type: typ, Major: i64(major), Minor: i64(minor), Access: access}
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		rule(true, "c", 1, 5, "rwm"),     // /dev/zero
		rule(true, "c", 1, 3, "rwm"),     // /dev/null
		rule(true, "c", 1, 9, "rwm"),     // /dev/urandom
		rule(true, "c", 1, 8, "rwm"),     // /dev/random
		rule(true, "c", 5, 0, "rwm"),     // /dev/tty
		rule(true, "c", 5, 1, "rwm"),     // /dev/console
		rule(false, "c", 10, 229, "rwm"), // /dev/fuse
		rule(true, "c", -1, -1, "m"),     // mknod of any char device
		rule(true, "b", -1, -1, "m"),     // mknod of any block device
		rule(true, "c", 1, 7, "rwm"),     // /dev/full
		rule(true, "c", 5, 2, "rwm"),     // /dev/ptmx
		rule(true, "c", 136, -1, "rwm"),  // /dev/pts/*
		rule(true, "c", 10, 200, "rwm"),  // /dev/net/tun
	}
}

// defaultMounts are Docker's default mounts, /dev/shm sized shmSize.
func defaultMounts(shmSize int64) []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=" + strconv.FormatInt(shmSize, 10)}},
	}
}

// args applies Docker's entrypoint/cmd rules.
func args(opts Options) ([]string, error) {
	entrypoint, cmd := opts.Image.Entrypoint, opts.Image.Cmd
	if opts.Entrypoint != nil {
		entrypoint, cmd = opts.Entrypoint, nil
		// `--entrypoint ""` arrives as [""]: it clears the entrypoint.
		if len(entrypoint) == 1 && entrypoint[0] == "" {
			entrypoint = nil
		}
	}
	if len(opts.Cmd) > 0 {
		cmd = opts.Cmd
	}
	a := append(slices.Clone(entrypoint), cmd...)
	if len(a) == 0 {
		return nil, fmt.Errorf("no command specified: %w", ErrInvalid)
	}
	if a[0] == "" {
		return nil, fmt.Errorf("empty command name in %q: %w", a, ErrInvalid)
	}
	return a, nil
}

// containerPath checks that p is an absolute path and returns it cleaned.
func containerPath(what, p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("%s: empty path: %w", what, ErrInvalid)
	}
	if !path.IsAbs(p) {
		return "", fmt.Errorf("%s %q: not an absolute path: %w", what, p, ErrInvalid)
	}
	return path.Clean(p), nil
}

// cleanDestination checks that p is absolute and already clean.
func cleanDestination(what, p string) error {
	if _, err := containerPath(what, p); err != nil {
		return err
	}
	if c := path.Clean(p); c != p {
		return fmt.Errorf("%s %q: not a clean path (%q): %w", what, p, c, ErrInvalid)
	}
	return nil
}

var propagations = []string{"rprivate", "private", "rshared", "shared", "rslave", "slave"}

func isBindMount(m specs.Mount) bool {
	return m.Type == "bind" || slices.Contains(m.Options, "bind") || slices.Contains(m.Options, "rbind")
}

// userMounts validates binds and extra mounts and returns them in mount
// order: sorted by destination depth (parents before children, as Docker
// does), binds before extra mounts at equal depth. An extra mount at a bind's
// destination is dropped.
func userMounts(opts Options) ([]specs.Mount, string, error) {
	var out []specs.Mount
	seen := make(map[string]bool)
	rootPropagation := ""
	for _, b := range opts.Binds {
		if b.Source == "" || !path.IsAbs(b.Source) {
			return nil, "", fmt.Errorf("bind %s:%s: source must be an absolute path: %w", b.Source, b.Destination, ErrInvalid)
		}
		if err := cleanDestination("bind destination", b.Destination); err != nil {
			return nil, "", err
		}
		if b.Destination == "/" {
			return nil, "", fmt.Errorf("bind %s:%s: destination can't be '/': %w", b.Source, b.Destination, ErrInvalid)
		}
		if seen[b.Destination] {
			return nil, "", fmt.Errorf("duplicate mount point: %s: %w", b.Destination, ErrInvalid)
		}
		seen[b.Destination] = true
		prop := b.Propagation
		if prop == "" {
			prop = "rprivate"
		}
		if !slices.Contains(propagations, prop) {
			return nil, "", fmt.Errorf("bind %s:%s: invalid propagation %q (want one of %s): %w",
				b.Source, b.Destination, b.Propagation, strings.Join(propagations, ", "), ErrInvalid)
		}
		switch prop {
		case "shared", "rshared":
			rootPropagation = "shared"
		case "slave", "rslave":
			if rootPropagation == "" {
				rootPropagation = "rslave"
			}
		}
		o := []string{"rbind"}
		if b.ReadOnly {
			o = append(o, "ro")
		}
		o = append(o, prop)
		out = append(out, specs.Mount{Destination: b.Destination, Type: "bind", Source: b.Source, Options: o})
	}
	extraSeen := make(map[string]bool)
	for _, m := range opts.ExtraMounts {
		if err := cleanDestination("mount destination", m.Destination); err != nil {
			return nil, "", err
		}
		if isBindMount(m) && (m.Source == "" || !path.IsAbs(m.Source)) {
			return nil, "", fmt.Errorf("mount %s: bind source %q must be an absolute path: %w", m.Destination, m.Source, ErrInvalid)
		}
		if extraSeen[m.Destination] {
			return nil, "", fmt.Errorf("duplicate mount point: %s: %w", m.Destination, ErrInvalid)
		}
		extraSeen[m.Destination] = true
		if seen[m.Destination] {
			continue // the user's bind wins
		}
		m.Options = slices.Clone(m.Options)
		out = append(out, m)
	}
	slices.SortStableFunc(out, func(a, b specs.Mount) int {
		return depth(a.Destination) - depth(b.Destination)
	})
	return out, rootPropagation, nil
}

func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

func generate(opts Options) (*specs.Spec, error) {
	if err := validateEnv(opts.Image.Env); err != nil {
		return nil, fmt.Errorf("image env: %w", err)
	}
	if err := validateEnv(opts.Env); err != nil {
		return nil, err
	}
	argv, err := args(opts)
	if err != nil {
		return nil, err
	}

	cwd := opts.WorkingDir
	if cwd == "" {
		cwd = opts.Image.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	if cwd, err = containerPath("working directory", cwd); err != nil {
		return nil, err
	}

	userSpec := opts.User
	if userSpec == "" {
		userSpec = opts.Image.User
	}
	user, home, err := resolveUser(opts.Rootfs, userSpec)
	if err != nil {
		return nil, err
	}

	hostname := opts.Hostname
	if hostname == "" {
		hostname = opts.ID
		if len(hostname) > 12 {
			hostname = hostname[:12]
		}
	}
	if len(hostname) > maxHostnameSize || strings.ContainsAny(hostname, "/ \t\n\x00") {
		return nil, fmt.Errorf("invalid hostname %q: %w", hostname, ErrInvalid)
	}

	env := []string{"PATH=" + DefaultPathEnv, "HOSTNAME=" + hostname}
	if opts.Tty {
		env = append(env, "TERM=xterm")
	}
	env = mergeEnv(env, append(slices.Clone(opts.Image.Env), opts.Env...))
	if !hasEnv(env, "HOME") {
		env = append(env, "HOME="+home)
	}

	caps, err := capabilities(opts.CapAdd, opts.CapDrop, opts.Privileged)
	if err != nil {
		return nil, err
	}

	resources, err := resources(opts)
	if err != nil {
		return nil, err
	}

	if opts.ShmSize < 0 {
		return nil, fmt.Errorf("shm size %d can not be less than 0: %w", opts.ShmSize, ErrInvalid)
	}
	shm := opts.ShmSize
	if shm == 0 {
		shm = defaultShmSize
	}
	user2, rootProp, err := userMounts(opts)
	if err != nil {
		return nil, err
	}
	mounts := mergeMounts(defaultMounts(shm), user2, opts.ReadonlyRootfs, opts.Privileged)

	namespaces := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace},
		{Type: specs.MountNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.IPCNamespace},
	}
	var sysctl map[string]string
	switch n := opts.NetworkNamespace; {
	case n == "":
		namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
		// Docker's defaults for a fresh network namespace: unprivileged
		// ICMP echo sockets and binding ports below 1024.
		sysctl = map[string]string{
			"net.ipv4.ping_group_range":           "0 2147483647",
			"net.ipv4.ip_unprivileged_port_start": "0",
		}
	case n == "host":
	default:
		if !path.IsAbs(n) {
			return nil, fmt.Errorf("network namespace %q: want \"\", \"host\" or an absolute path: %w", n, ErrInvalid)
		}
		namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: path.Clean(n)})
	}
	namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})

	rootPath := opts.RootfsPath
	if rootPath == "" {
		rootPath = defaultRootfs
	}

	// A cgroupfs path must stay below the cgroup root (systemd's
	// "slice:prefix:name" form is the runtime's to check).
	if !strings.Contains(opts.CgroupsPath, ":") && slices.Contains(strings.Split(opts.CgroupsPath, "/"), "..") {
		return nil, fmt.Errorf("cgroups path %q: must not contain \"..\": %w", opts.CgroupsPath, ErrInvalid)
	}

	linux := &specs.Linux{
		Namespaces:        namespaces,
		Resources:         resources,
		CgroupsPath:       opts.CgroupsPath,
		Sysctl:            sysctl,
		RootfsPropagation: rootProp,
		Devices:           []specs.LinuxDevice{},
	}
	if opts.Privileged {
		linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		linux.Devices = append(linux.Devices, opts.Devices...)
	} else {
		linux.Resources.Devices = defaultDeviceRules()
		for _, d := range opts.Devices {
			if d.Type != "c" && d.Type != "b" && d.Type != "u" {
				return nil, fmt.Errorf("device %s: type %q cannot be allowed in the device cgroup: %w", d.Path, d.Type, ErrInvalid)
			}
			typ := d.Type
			if typ == "u" {
				typ = "c"
			}
			linux.Devices = append(linux.Devices, d)
			linux.Resources.Devices = append(linux.Resources.Devices, specs.LinuxDeviceCgroup{
				Allow: true, Type: typ, Major: i64(d.Major), Minor: i64(d.Minor), Access: "rwm",
			})
		}
		linux.MaskedPaths = slices.Clone(maskedPaths)
		linux.ReadonlyPaths = slices.Clone(readonlyPaths)
	}

	s := &specs.Spec{
		Version: OCIVersion,
		Process: &specs.Process{
			Terminal:        opts.Tty,
			User:            user,
			Args:            argv,
			Env:             env,
			Cwd:             cwd,
			Capabilities:    capSet(caps, user.UID),
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: defaultNofile, Soft: defaultNofile}},
			NoNewPrivileges: !opts.AllowNewPrivileges,
		},
		Root:     &specs.Root{Path: rootPath, Readonly: opts.ReadonlyRootfs},
		Hostname: hostname,
		Mounts:   mounts,
		Linux:    linux,
	}
	if err := Validate(s); err != nil {
		return nil, err
	}
	return s, nil
}

// capSet places caps in the sets Docker uses: bounding, effective and
// permitted for root; only bounding for another user (execve would clear the
// others for a non-root user anyway, and Docker does the same since
// CVE-2022-24769). Inheritable and ambient stay empty.
func capSet(caps []string, uid uint32) *specs.LinuxCapabilities {
	c := &specs.LinuxCapabilities{Bounding: slices.Clone(caps)}
	if uid == 0 {
		c.Effective = slices.Clone(caps)
		c.Permitted = slices.Clone(caps)
	}
	return c
}

// writableWithReadonlyRoot are the default mounts that stay writable with a
// read-only rootfs (Docker's list).
var writableWithReadonlyRoot = []string{"/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev"}

// mergeMounts drops default mounts that a user mount replaces (and all of
// /dev's children when /dev is user-mounted), applies read-only rootfs and
// privileged adjustments as Docker does, and appends the user mounts.
func mergeMounts(defaults, user []specs.Mount, readonlyRootfs, privileged bool) []specs.Mount {
	userDst := make(map[string]bool, len(user))
	for _, m := range user {
		userDst[m.Destination] = true
	}
	var out []specs.Mount
	for _, m := range defaults {
		if userDst[m.Destination] || (userDst["/dev"] && strings.HasPrefix(m.Destination, "/dev/")) {
			continue
		}
		m.Options = slices.Clone(m.Options)
		if readonlyRootfs && !slices.Contains(writableWithReadonlyRoot, m.Destination) && !slices.Contains(m.Options, "ro") {
			m.Options = append(m.Options, "ro")
		}
		if privileged && (m.Destination == "/sys" || m.Type == "cgroup") {
			m.Options = slices.DeleteFunc(m.Options, func(o string) bool { return o == "ro" })
		}
		out = append(out, m)
	}
	return append(out, user...)
}

// resources turns Docker's resource options into cgroup settings.
func resources(opts Options) (*specs.LinuxResources, error) {
	r := &specs.LinuxResources{}
	mem, swap := opts.Memory, opts.MemorySwap
	switch {
	case mem < 0:
		return nil, fmt.Errorf("memory limit %d: must not be negative: %w", mem, ErrInvalid)
	case mem > 0 && mem < minMemory:
		return nil, fmt.Errorf("memory limit %d: minimum memory limit allowed is 6MB: %w", mem, ErrInvalid)
	case swap < -1:
		return nil, fmt.Errorf("memory swap limit %d: must be -1 (unlimited), 0 or positive: %w", swap, ErrInvalid)
	case swap > 0 && mem == 0:
		return nil, fmt.Errorf("memory swap limit %d: the memory limit must be set too: %w", swap, ErrInvalid)
	case swap > 0 && swap < mem:
		return nil, fmt.Errorf("memory swap limit %d: minimum memoryswap limit should be larger than memory limit %d: %w", swap, mem, ErrInvalid)
	}
	if mem > 0 && swap == 0 {
		swap = 2 * mem
	}
	if mem > 0 || swap != 0 {
		r.Memory = &specs.LinuxMemory{}
		if mem > 0 {
			r.Memory.Limit = i64(mem)
		}
		if swap != 0 {
			r.Memory.Swap = i64(swap)
		}
	}

	switch n := opts.NanoCPUs; {
	case n < 0:
		return nil, fmt.Errorf("cpus: nano cpus %d must not be negative: %w", n, ErrInvalid)
	case n > 0 && n < minNanoCPUs:
		return nil, fmt.Errorf("cpus: %d nano cpus is below the minimum of 0.01 CPU: %w", n, ErrInvalid)
	}
	if opts.CPUShares < 0 {
		return nil, fmt.Errorf("cpu shares %d: must not be negative: %w", opts.CPUShares, ErrInvalid)
	}
	if opts.NanoCPUs > 0 || opts.CPUShares > 0 {
		r.CPU = &specs.LinuxCPU{}
		if opts.NanoCPUs > 0 {
			period := uint64(cpuPeriod)
			r.CPU.Period = &period
			// NanoCPUs × period / 1e9, without the overflow.
			r.CPU.Quota = i64(opts.NanoCPUs / (1e9 / cpuPeriod))
		}
		if opts.CPUShares > 0 {
			// Docker clamps shares into the kernel's range.
			shares := uint64(min(max(opts.CPUShares, minCPUShares), maxCPUShares))
			r.CPU.Shares = &shares
		}
	}
	if opts.PidsLimit != nil && *opts.PidsLimit > 0 {
		r.Pids = &specs.LinuxPids{Limit: i64(*opts.PidsLimit)}
	}
	return r, nil
}
