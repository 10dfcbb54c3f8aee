package libct

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// mountError is a failed mount(2) with its arguments.
type mountError struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
	err                    error
}

func (e *mountError) Error() string {
	return fmt.Sprintf("mount %q on %q (type %q, flags %#x, data %q): %v",
		e.source, e.target, e.fstype, e.flags, e.data, e.err)
}

func (e *mountError) Unwrap() error { return e.err }

func mount(source, target, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return &mountError{source, target, fstype, flags, data, err}
	}
	return nil
}

// mountEntry performs one entry of spec.Mounts below rootfs.
func mountEntry(rootfs, bundle string, m specs.Mount, cgPaths map[string]string) error {
	o := parseMountOptions(m.Options)
	dest, err := securejoin.SecureJoin(rootfs, m.Destination)
	if err != nil {
		return fmt.Errorf("mount destination %s: %w", m.Destination, err)
	}
	switch {
	case m.Type == "cgroup" || m.Type == "cgroup2":
		return mountCgroup(dest, o, cgPaths)
	case isBind(m.Type, o):
		src := m.Source
		if !filepath.IsAbs(src) {
			src = filepath.Join(bundle, src)
		}
		return bindMount(src, dest, o)
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return fmt.Errorf("mount destination %s: %w", m.Destination, err)
	}
	err = mount(m.Source, dest, m.Type, o.Flags, o.Data)
	if err != nil && (m.Type == "sysfs" || m.Type == "mqueue") && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EBUSY)) {
		// Without a network (ipc) namespace of its own, the kernel refuses
		// a new sysfs (mqueue): bind the runtime's one instead.
		host := "/sys"
		if m.Type == "mqueue" {
			host = "/dev/mqueue"
		}
		o.Flags |= msBind | msRec
		return bindMount(host, dest, o)
	}
	if err != nil {
		return err
	}
	if err := setRecursive(dest, o); err != nil {
		return err
	}
	if o.Propagation != 0 {
		return mount("", dest, "", o.Propagation, "")
	}
	return nil
}

// bindMount binds src on dest, then applies the remaining flags with a
// remount and the propagation.
func bindMount(src, dest string, o mountOpts) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("bind source: %w", err)
	}
	if fi.IsDir() {
		err = os.MkdirAll(dest, 0o755)
	} else {
		err = ensureFile(dest)
	}
	if err != nil {
		return fmt.Errorf("bind destination: %w", err)
	}
	if err := mount(src, dest, "", msBind|o.Flags&msRec, ""); err != nil {
		return err
	}
	if rest := o.Flags &^ (msBind | msRec | msRemount); rest != 0 {
		if err := mount("", dest, "", msBind|msRemount|rest, ""); err != nil {
			return err
		}
	}
	if err := setRecursive(dest, o); err != nil {
		return err
	}
	if o.Propagation != 0 {
		return mount("", dest, "", o.Propagation, "")
	}
	return nil
}

// setRecursive applies the recursive options (rro, rnosuid, …) to the
// mount at dest and every mount below it.
func setRecursive(dest string, o mountOpts) error {
	if o.RecSet == 0 && o.RecClear == 0 {
		return nil
	}
	attr := unix.MountAttr{Attr_set: o.RecSet, Attr_clr: o.RecClear}
	if err := unix.MountSetattr(unix.AT_FDCWD, dest, unix.AT_RECURSIVE, &attr); err != nil {
		return fmt.Errorf("mount_setattr %s (set %#x, clear %#x): %w", dest, o.RecSet, o.RecClear, err)
	}
	return nil
}

// ensureFile creates an empty file (and its parents) if path is missing.
func ensureFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// needsCgroupPaths reports whether spec mounts include a cgroup filesystem.
func needsCgroupPaths(ms []specs.Mount) bool {
	for _, m := range ms {
		if m.Type == "cgroup" || m.Type == "cgroup2" {
			return true
		}
	}
	return false
}

// readSelfCgroups maps each hierarchy's controller list ("memory",
// "cpu,cpuacct", "name=systemd", "" for cgroup v2) to our cgroup path.
func readSelfCgroups() (map[string]string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read own cgroups: %w", err)
	}
	defer f.Close()
	return parseProcCgroup(f), nil
}

// parseProcCgroup parses /proc/<pid>/cgroup.
func parseProcCgroup(f interface{ Read([]byte) (int, error) }) map[string]string {
	out := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		parts := strings.SplitN(s.Text(), ":", 3)
		if len(parts) == 3 {
			out[parts[1]] = parts[2]
		}
	}
	return out
}

// hostCgroupV2 reports whether /sys/fs/cgroup is the unified hierarchy.
func hostCgroupV2() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// mountCgroup gives the container a view of its own cgroup: a fresh cgroup2
// mount on a v2 host (rooted at the container's cgroup inside a cgroup
// namespace); on a v1 host a tmpfs with a bind of the container's cgroup
// directory in each hierarchy.
func mountCgroup(dest string, o mountOpts, cgPaths map[string]string) error {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return fmt.Errorf("cgroup mount destination: %w", err)
	}
	flags := o.Flags &^ (msBind | msRec | msRemount)
	if hostCgroupV2() {
		err := mount("cgroup2", dest, "cgroup2", flags, "")
		if err != nil && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EBUSY)) {
			src := filepath.Join("/sys/fs/cgroup", cgPaths[""])
			return bindMount(src, dest, mountOpts{Flags: flags | msBind})
		}
		return err
	}
	if err := mount("tmpfs", dest, "tmpfs", flags&^msRdonly, "mode=755"); err != nil {
		return err
	}
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	done := map[string]bool{}
	for _, mi := range mounts {
		if filepath.Dir(mi.Mountpoint) != "/sys/fs/cgroup" {
			continue
		}
		name := filepath.Base(mi.Mountpoint)
		key, ok := hierarchyKey(mi.FSType, mi.VFSOptions, cgPaths)
		if !ok || done[name] {
			continue
		}
		done[name] = true
		rel, err := filepath.Rel(mi.Root, cgPaths[key])
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		sub := filepath.Join(dest, name)
		if err := bindMount(filepath.Join(mi.Mountpoint, rel), sub, mountOpts{Flags: flags | msBind}); err != nil {
			return err
		}
		if strings.Contains(name, ",") {
			for _, c := range strings.Split(name, ",") {
				if err := os.Symlink(name, filepath.Join(dest, c)); err != nil && !errors.Is(err, os.ErrExist) {
					return fmt.Errorf("cgroup symlink %s: %w", c, err)
				}
			}
		}
	}
	if flags&msRdonly != 0 {
		return mount("", dest, "", msRemount|flags, "mode=755")
	}
	return nil
}

// hierarchyKey finds the /proc/self/cgroup key of a cgroup mount from its
// super options.
func hierarchyKey(fstype, superOpts string, cgPaths map[string]string) (string, bool) {
	if fstype == "cgroup2" {
		_, ok := cgPaths[""]
		return "", ok
	}
	opts := map[string]bool{}
	for _, o := range strings.Split(superOpts, ",") {
		opts[o] = true
	}
	for key := range cgPaths {
		if key == "" {
			continue
		}
		all := true
		for _, c := range strings.Split(key, ",") {
			if !opts[c] {
				all = false
				break
			}
		}
		if all {
			return key, true
		}
	}
	return "", false
}

// makeParentPrivate makes the mount that holds rootfs private, which
// pivot_root requires when the runtime's mounts are shared.
func makeParentPrivate(rootfs string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.ParentsFilter(rootfs))
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	best := ""
	for _, m := range mounts {
		if len(m.Mountpoint) > len(best) {
			best = m.Mountpoint
		}
	}
	if best == "" || !strings.Contains(mountsOptional(mounts, best), "shared:") {
		return nil
	}
	return mount("", best, "", msPrivate, "")
}

func mountsOptional(mounts []*mountinfo.Info, mp string) string {
	for _, m := range mounts {
		if m.Mountpoint == mp {
			return m.Optional
		}
	}
	return ""
}

// devNode is a device node to create in the container's /dev.
type devNode struct {
	path         string
	typ          string // c, b, u or p
	major, minor int64
	mode         uint32
	uid, gid     uint32
}

// defaultDevices are created in every container with its own /dev.
var defaultDevices = []devNode{
	{path: "/dev/null", typ: "c", major: 1, minor: 3, mode: 0o666},
	{path: "/dev/zero", typ: "c", major: 1, minor: 5, mode: 0o666},
	{path: "/dev/full", typ: "c", major: 1, minor: 7, mode: 0o666},
	{path: "/dev/random", typ: "c", major: 1, minor: 8, mode: 0o666},
	{path: "/dev/urandom", typ: "c", major: 1, minor: 9, mode: 0o666},
	{path: "/dev/tty", typ: "c", major: 5, minor: 0, mode: 0o666},
}

// deviceList merges the defaults (if wanted) with the spec's devices; a
// spec device replaces a default at the same path.
func deviceList(devs []specs.LinuxDevice, withDefaults bool) []devNode {
	var out []devNode
	byPath := map[string]int{}
	if withDefaults {
		for _, d := range defaultDevices {
			byPath[d.path] = len(out)
			out = append(out, d)
		}
	}
	for _, d := range devs {
		n := devNode{path: d.Path, typ: d.Type, major: d.Major, minor: d.Minor, mode: 0o666}
		if d.FileMode != nil {
			n.mode = uint32(d.FileMode.Perm())
		}
		if d.UID != nil {
			n.uid = *d.UID
		}
		if d.GID != nil {
			n.gid = *d.GID
		}
		if i, ok := byPath[n.path]; ok {
			out[i] = n
			continue
		}
		byPath[n.path] = len(out)
		out = append(out, n)
	}
	return out
}

// createDevices makes the device nodes below rootfs, binding the host's
// node where mknod is not permitted.
func createDevices(rootfs string, devs []specs.LinuxDevice, withDefaults bool) error {
	for _, d := range deviceList(devs, withDefaults) {
		dest, err := securejoin.SecureJoin(rootfs, d.path)
		if err != nil {
			return fmt.Errorf("device %s: %w", d.path, err)
		}
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			return fmt.Errorf("device %s: %w", d.path, err)
		}
		var kind uint32
		switch d.typ {
		case "c", "u":
			kind = unix.S_IFCHR
		case "b":
			kind = unix.S_IFBLK
		case "p":
			kind = unix.S_IFIFO
		default:
			return fmt.Errorf("device %s: type %q: %w", d.path, d.typ, ErrInvalidSpec)
		}
		if err := unix.Unlink(dest); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("device %s: %w", d.path, err)
		}
		err = unix.Mknod(dest, kind|d.mode, int(unix.Mkdev(uint32(d.major), uint32(d.minor))))
		if errors.Is(err, unix.EPERM) {
			if err := ensureFile(dest); err != nil {
				return fmt.Errorf("device %s: %w", d.path, err)
			}
			if err := mount(d.path, dest, "", msBind, ""); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("mknod %s: %w", d.path, err)
		}
		if err := unix.Chown(dest, int(d.uid), int(d.gid)); err != nil {
			return fmt.Errorf("chown %s: %w", d.path, err)
		}
	}
	return nil
}

// devSymlinks creates the standard links in the container's /dev.
func devSymlinks(rootfs string, ms []specs.Mount) error {
	dev, err := securejoin.SecureJoin(rootfs, "/dev")
	if err != nil {
		return fmt.Errorf("/dev: %w", err)
	}
	links := [][2]string{
		{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/proc/kcore", "core"})
	}
	for _, m := range ms {
		if filepath.Clean(m.Destination) == "/dev/pts" {
			if err := os.Remove(filepath.Join(dev, "ptmx")); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("/dev/ptmx: %w", err)
			}
			links = append(links, [2]string{"pts/ptmx", "ptmx"})
		}
	}
	for _, l := range links {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("/dev/%s: %w", l[1], err)
		}
	}
	return nil
}

// pivotRoot makes rootfs the root with pivot_root(".", "."): the old root
// ends up mounted on top of the new one and is detached right away.
func pivotRoot(rootfs string) error {
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /: %w", err)
	}
	defer unix.Close(oldRoot)
	newRoot, err := unix.Open(rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer unix.Close(newRoot)
	if err := unix.Fchdir(newRoot); err != nil {
		return fmt.Errorf("chdir to rootfs: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", rootfs, err)
	}
	if err := unix.Fchdir(oldRoot); err != nil {
		return fmt.Errorf("chdir to old root: %w", err)
	}
	// Never let the detach propagate to the runtime's mounts.
	if err := mount("", ".", "", msSlave|msRec, ""); err != nil {
		return err
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}

// moveRoot is the NoPivot variant: move rootfs over / and chroot into it.
func moveRoot(rootfs string) error {
	if err := unix.Chdir(rootfs); err != nil {
		return fmt.Errorf("chdir to rootfs: %w", err)
	}
	if err := mount(rootfs, "/", "", msMove, ""); err != nil {
		return err
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}

// statfsMountFlags maps statfs f_flags to the mount flags that a bind
// remount must repeat.
func statfsMountFlags(f int64) uintptr {
	var m uintptr
	for _, p := range [][2]uintptr{
		{unix.ST_NOSUID, msNosuid}, {unix.ST_NODEV, msNodev}, {unix.ST_NOEXEC, msNoexec},
		{unix.ST_NOATIME, msNoatime}, {unix.ST_NODIRATIME, msNodiratime}, {unix.ST_RELATIME, msRelatime},
	} {
		if uintptr(f)&p[0] != 0 {
			m |= p[1]
		}
	}
	return m
}

// remountReadonly makes the mount at p read-only, keeping its other flags.
func remountReadonly(p string, extra uintptr) error {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", p, err)
	}
	return mount("", p, "", msBind|msRemount|msRdonly|extra|statfsMountFlags(st.Flags), "")
}

// readonlyPath binds p onto itself read-only; a missing p is fine.
func readonlyPath(p string) error {
	if err := mount(p, p, "", msBind|msRec, ""); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	return remountReadonly(p, msRec)
}

// maskPath hides p: /dev/null over a file, an empty read-only tmpfs over a
// directory; a missing p is fine.
func maskPath(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("mask %s: %w", p, err)
	}
	if fi.IsDir() {
		return mount("tmpfs", p, "tmpfs", msRdonly, "")
	}
	return mount("/dev/null", p, "", msBind, "")
}
