package sysinit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/vmimage/instance"
)

// ErrConfig: the instance configuration cannot be turned into a plan.
var ErrConfig = errors.New("sysinit: invalid instance configuration")

// Mount is one mount(2) call of the plan.
type Mount struct {
	// Source, Target, FSType, Flags and Data are mount(2)'s arguments.
	Source string
	Target string
	FSType string
	Flags  uintptr
	Data   string
	// Optional mounts may fail (logged); the others stop the boot.
	Optional bool
}

func (m Mount) String() string {
	return fmt.Sprintf("%s on %s type %s (flags %#x, %q)", m.Source, m.Target, m.FSType, m.Flags, m.Data)
}

const (
	nosuidNodev       = unix.MS_NOSUID | unix.MS_NODEV
	nosuidNodevNoexec = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
)

// BaseMounts are the pseudo-filesystems every boot mounts, in order (parents before children).
func BaseMounts() []Mount {
	return []Mount{
		{Source: "proc", Target: "/proc", FSType: "proc", Flags: nosuidNodevNoexec},
		{Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: nosuidNodevNoexec},
		{Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Flags: unix.MS_NOSUID, Data: "mode=0755"},
		{Source: "devpts", Target: "/dev/pts", FSType: "devpts", Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "newinstance,ptmxmode=0666,mode=0620,gid=5"},
		{Source: "shm", Target: "/dev/shm", FSType: "tmpfs", Flags: nosuidNodev, Data: "mode=1777"},
		{Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: nosuidNodev, Data: "mode=0755"},
		{Source: "tmpfs", Target: "/tmp", FSType: "tmpfs", Flags: nosuidNodev, Data: "mode=1777"},
		{Source: "cgroup2", Target: "/sys/fs/cgroup", FSType: "cgroup2", Flags: nosuidNodevNoexec, Data: "nsdelegate"},
		{Source: "mqueue", Target: "/dev/mqueue", FSType: "mqueue", Flags: nosuidNodevNoexec, Optional: true},
	}
}

// DataMount is the data disk's mount, or false when the configuration names no disk (state then lives
// in the rootfs, lost at every stop).
func DataMount(cfg instance.Config) (Mount, bool) {
	if cfg.DataDisk == "" {
		return Mount{}, false
	}
	return Mount{Source: cfg.DataDisk, Target: DataDir, FSType: "ext4", Flags: unix.MS_NOATIME}, true
}

// NineP is the 9p mount option string: virtio transport, 9P2000.L (uids, xattrs, locks), a 512 KiB
// message size (the virtio transport's limit on the Debian 12 kernel) and cache=mmap, which keeps no
// data cache (host-side changes show at once, as a bind mount would) but allows shared mmap.
const NineP = "trans=virtio,version=9p2000.L,msize=512000,cache=mmap"

// ShareMounts are the mounts of the host shares, in configuration order.
func ShareMounts(shares []instance.Share) ([]Mount, error) {
	var ms []Mount
	for _, s := range shares {
		if !path.IsAbs(s.GuestPath) || path.Clean(s.GuestPath) == "/" {
			return nil, fmt.Errorf("%w: share %s: guest path %q", ErrConfig, s.Tag, s.GuestPath)
		}
		m := Mount{Source: s.Tag, Target: path.Clean(s.GuestPath), Flags: nosuidNodev}
		switch s.Type {
		case "9p":
			m.FSType, m.Data = "9p", NineP
		case "virtiofs":
			m.FSType = "virtiofs"
		default:
			return nil, fmt.Errorf("%w: share %s: type %q", ErrConfig, s.Tag, s.Type)
		}
		if s.ReadOnly {
			m.Flags |= unix.MS_RDONLY
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// UnmountOrder is the order in which shutdown unmounts what boot mounted: the reverse, and only real
// filesystems (the pseudo-filesystems hold nothing to flush).
func UnmountOrder(mounted []Mount) []string {
	var ts []string
	for i := len(mounted) - 1; i >= 0; i-- {
		switch mounted[i].FSType {
		case "proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "cgroup2", "mqueue":
			continue
		}
		ts = append(ts, mounted[i].Target)
	}
	return ts
}

// Submounts lists the mount points of a mountinfo table (/proc/self/mountinfo) that lie strictly below one
// of targets — containers' overlays and the like under the data disk — latest first, the order in which
// they must go before their parents can.
func Submounts(mountinfo []byte, targets []string) []string {
	var out []string
	lines := strings.Split(string(mountinfo), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		for _, t := range targets {
			if strings.HasPrefix(mp, strings.TrimSuffix(t, "/")+"/") {
				out = append(out, mp)
				break
			}
		}
	}
	return out
}

// unescapeMountinfo undoes mountinfo's octal escapes ("\040" for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			var v byte
			ok := true
			for _, c := range []byte(s[i+1 : i+4]) {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + (c - '0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ParseModuleList reads the image's load list: one module path per line, in load order; blank lines and
// "#" comments are skipped. Relative paths are taken below /lib/modules/<release>.
func ParseModuleList(b []byte, release string) []string {
	var mods []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if !path.IsAbs(l) {
			l = path.Join("/lib/modules", release, l)
		}
		mods = append(mods, l)
	}
	return mods
}

// Controllers picks the controllers to enable for child cgroups from cgroup.controllers' content, as a
// cgroup.subtree_control write ("+cpu +memory …").
func Controllers(available string) string {
	var w []string
	for _, c := range strings.Fields(available) {
		w = append(w, "+"+c)
	}
	return strings.Join(w, " ")
}

// NetPlan is the uplink configuration after defaults.
type NetPlan struct {
	Interface string
	Address   netip.Prefix
	Gateway   netip.Addr
	DNS       []netip.Addr
	MTU       int
}

// QEMU user-net's fixed addresses (slirp): the guest, the gateway (which also reaches the host's
// loopback) and the DNS forwarder.
var (
	UserNetAddress = netip.MustParsePrefix("10.0.2.15/24")
	UserNetGateway = netip.MustParseAddr("10.0.2.2")
	UserNetDNS     = netip.MustParseAddr("10.0.2.3")
)

// PlanNetwork applies the defaults (eth0 with QEMU user-net's addresses) and parses n.
func PlanNetwork(n instance.Network) (NetPlan, error) {
	p := NetPlan{Interface: n.Interface, Address: UserNetAddress, Gateway: UserNetGateway, MTU: n.MTU}
	if p.Interface == "" {
		p.Interface = "eth0"
	}
	var err error
	if n.Address != "" {
		if p.Address, err = netip.ParsePrefix(n.Address); err != nil {
			return p, fmt.Errorf("%w: network address %q: %v", ErrConfig, n.Address, err)
		}
	}
	if n.Gateway != "" {
		if p.Gateway, err = netip.ParseAddr(n.Gateway); err != nil {
			return p, fmt.Errorf("%w: gateway %q: %v", ErrConfig, n.Gateway, err)
		}
	}
	if !p.Address.Contains(p.Gateway) {
		return p, fmt.Errorf("%w: gateway %s is outside %s", ErrConfig, p.Gateway, p.Address)
	}
	for _, d := range n.DNS {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return p, fmt.Errorf("%w: DNS server %q: %v", ErrConfig, d, err)
		}
		p.DNS = append(p.DNS, a)
	}
	if len(n.DNS) == 0 {
		p.DNS = []netip.Addr{UserNetDNS}
	}
	if p.MTU < 0 || (p.MTU > 0 && p.MTU < 576) {
		return p, fmt.Errorf("%w: MTU %d", ErrConfig, p.MTU)
	}
	return p, nil
}

// ResolvConf is the VM's /etc/resolv.conf.
func ResolvConf(p NetPlan) []byte {
	var b bytes.Buffer
	for _, d := range p.DNS {
		fmt.Fprintf(&b, "nameserver %s\n", d)
	}
	return b.Bytes()
}

// Hostname is the VM's hostname: the instance name, "berth" without one.
func Hostname(cfg instance.Config) string {
	if cfg.Name == "" {
		return "berth"
	}
	return cfg.Name
}

// HostsFile is the VM's /etc/hosts.
func HostsFile(hostname string) []byte {
	return fmt.Appendf(nil, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n", hostname)
}

// EngineArgv is the engine child's argv: exe's "serve" command with the VM's fixed paths, the SSH transport
// on every address at SSHPort with the keys from the instance configuration, and bridges forced on (the
// engine is not PID 1 but owns the VM's network namespace), and the demo image preloaded before the
// engine answers (so a client that sees the agent ready finds the image), and the engine waits for
// NetworkDone before it sets up container networking and for BootDone (background modules loaded,
// shares mounted) before it opens its containers.
// cfg.Agent's extra arguments are global flags.
func EngineArgv(exe string, cfg instance.Config) []string {
	argv := append([]string{exe}, cfg.Agent...)
	return append(argv, "serve",
		"--preload", DemoImage,
		"--socket", EngineSocket,
		"--root", DataDir,
		"--run-root", RunRoot,
		"--ssh-listen", fmt.Sprintf("tcp:0.0.0.0:%d", SSHPort),
		"--ssh-host-key", instance.HostKeyPath,
		"--ssh-authorized-keys", instance.AuthorizedKeysPath,
		"--bridge",
		"--wait-network", NetworkDone,
		"--wait-boot", BootDone,
	)
}

// GrowBlocks is the block count to grow a filesystem to so that it fills a device of devBytes, given its
// block size and the block count statfs reports (which leaves out the metadata, a few percent); ok is false
// when the device is not meaningfully larger (less than 1/16 more), so an unchanged disk is never resized.
func GrowBlocks(devBytes, blockSize, statfsBlocks uint64) (blocks uint64, ok bool) {
	if blockSize == 0 {
		return 0, false
	}
	blocks = devBytes / blockSize
	return blocks, blocks > statfsBlocks+statfsBlocks/16
}

// ProcState classifies a process from its /proc/PID/status for shutdown.
type ProcState struct {
	// Ignore: a kernel thread or a zombie, nothing to wait for.
	Ignore bool
	// DeafToTerm: SIGTERM cannot end it — it ignores SIGTERM, or it is the init of a PID namespace (a
	// container's first process) without a SIGTERM handler, which the kernel shields from default actions.
	DeafToTerm bool
}

// ParseProcStatus reads the fields of /proc/PID/status that ProcState needs.
func ParseProcStatus(status []byte) ProcState {
	var ppid, state string
	var nspid []string
	var sigCgt, sigIgn uint64
	for _, l := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "State":
			state = v
		case "PPid":
			ppid = v
		case "NSpid":
			nspid = strings.Fields(v)
		case "SigCgt":
			fmt.Sscanf(v, "%x", &sigCgt)
		case "SigIgn":
			fmt.Sscanf(v, "%x", &sigIgn)
		}
	}
	const term = 1 << (unix.SIGTERM - 1)
	switch {
	case strings.HasPrefix(state, "Z"), ppid == "0" || ppid == "2":
		return ProcState{Ignore: true}
	case sigIgn&term != 0:
		return ProcState{DeafToTerm: true}
	case len(nspid) > 1 && nspid[len(nspid)-1] == "1" && sigCgt&term == 0:
		return ProcState{DeafToTerm: true}
	}
	return ProcState{}
}

// HasExtSuperblock reports whether b (at least the first 2 KiB of a block device) holds an ext2/3/4
// superblock: magic 0xEF53 at byte 1024+56.
func HasExtSuperblock(b []byte) bool {
	const off = 1024 + 56
	return len(b) >= off+2 && binary.LittleEndian.Uint16(b[off:]) == 0xEF53
}

// Command is a control-port line.
type Command struct {
	// Op is "poweroff" or "time".
	Op string
	// UnixNano is the time to set ("time").
	UnixNano int64
}

// ParseCommand parses one control-port line.
func ParseCommand(line string) (Command, error) {
	f := strings.Fields(line)
	switch {
	case len(f) == 1 && f[0] == "poweroff":
		return Command{Op: "poweroff"}, nil
	case len(f) == 2 && f[0] == "time":
		var ns int64
		if _, err := fmt.Sscan(f[1], &ns); err != nil || ns <= 0 {
			return Command{}, fmt.Errorf("%w: control line %q: bad time", ErrConfig, line)
		}
		return Command{Op: "time", UnixNano: ns}, nil
	}
	return Command{}, fmt.Errorf("%w: unknown control line %q", ErrConfig, line)
}

// inotifyNames returns the names of the inotify events in b (struct inotify_event records: wd, mask,
// cookie, len, then len bytes of NUL-padded name).
func inotifyNames(b []byte) []string {
	var names []string
	for len(b) >= unix.SizeofInotifyEvent {
		n := int(binary.NativeEndian.Uint32(b[12:16]))
		end := unix.SizeofInotifyEvent + n
		if end > len(b) {
			break
		}
		names = append(names, string(bytes.TrimRight(b[unix.SizeofInotifyEvent:end], "\x00")))
		b = b[end:]
	}
	return names
}
