package libct

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// initMain runs in the re-executed agent binary. Credentials, capabilities
// and namespaces set with per-thread system calls must be those of the
// thread that finally calls execve, so everything runs on one locked thread.
func initMain() int {
	runtime.LockOSThread()
	err := runInit()
	// runInit returns only on failure.
	if err == nil {
		err = errors.New("init returned without exec")
	}
	msg := encodeMsg(msgError, []byte(err.Error()))
	if serr := unix.Sendmsg(fdSync, msg, nil, nil, 0); serr != nil {
		fmt.Fprintf(os.Stderr, "berth init: %v\n", err)
	}
	return 1
}

// initProc is the state of a running init.
type initProc struct {
	cfg   initConfig
	state []byte // state JSON for hooks run by init
	buf   []byte
}

func runInit() error {
	// Nothing inherited may reach hooks or the user process; our own fds
	// are used by number and need no inheritance either.
	if err := closeExtraFds(); err != nil {
		return err
	}
	cfgFile := os.NewFile(fdConfig, "config")
	raw, err := io.ReadAll(cfgFile)
	cfgFile.Close()
	if err != nil {
		return fmt.Errorf("read init config: %w", err)
	}
	ip := &initProc{buf: make([]byte, maxMsg)}
	if err := json.Unmarshal(raw, &ip.cfg); err != nil {
		return fmt.Errorf("decode init config: %w", err)
	}
	if ip.cfg.Process == nil {
		return errors.New("init config without process")
	}
	if ip.cfg.JoinMountNS {
		// Per thread: this locked thread is the one that will execve.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			return fmt.Errorf("unshare fs: %w", err)
		}
		if err := unix.Setns(fdMountNS, unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("join mount namespace: %w", err)
		}
	}
	if !ip.cfg.Exec {
		// While setting up, files and device nodes get exactly the modes
		// asked for.
		unix.Umask(0)
	}
	payload, err := ip.expect(msgGo)
	if err != nil {
		return err
	}
	ip.state = payload
	if !ip.cfg.Exec {
		if err := ip.setupContainer(); err != nil {
			return err
		}
	} else if ip.cfg.Process.Terminal {
		if err := ip.setupConsole(false); err != nil {
			return err
		}
	}
	return ip.finish()
}

// expect reads the next sync message and checks its type.
func (ip *initProc) expect(want byte) ([]byte, error) {
	n, _, _, _, err := unix.Recvmsg(fdSync, ip.buf, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("sync with parent: %w", err)
	}
	if n == 0 {
		return nil, errors.New("sync with parent: parent went away")
	}
	typ, payload, err := decodeMsg(ip.buf[:n])
	if err != nil {
		return nil, err
	}
	if typ == msgError {
		return nil, fmt.Errorf("parent: %s", payload)
	}
	if typ != want {
		return nil, fmt.Errorf("sync with parent: got message %q, want %q", typ, want)
	}
	return append([]byte(nil), payload...), nil
}

func sendMsg(typ byte, payload []byte, oob []byte) error {
	if err := unix.Sendmsg(fdSync, encodeMsg(typ, payload), oob, nil, 0); err != nil {
		return fmt.Errorf("sync with parent: %w", err)
	}
	return nil
}

// setupContainer builds the container's root filesystem and identity.
func (ip *initProc) setupContainer() error {
	spec := ip.cfg.Spec
	if spec == nil || spec.Linux == nil {
		return errors.New("init config without spec")
	}
	rootfs := ip.cfg.Rootfs
	if !ip.cfg.NewMountNS {
		// Without a mount namespace of its own the container shares the
		// runtime's mounts: never touch them, only chroot (as runc does).
		return ip.setupShared(spec, rootfs)
	}
	var cgPaths map[string]string
	if needsCgroupPaths(spec.Mounts) {
		var err error
		if cgPaths, err = readSelfCgroups(); err != nil {
			return err
		}
	}
	if ip.cfg.CgroupNS {
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("unshare cgroup namespace: %w", err)
		}
	}
	prop := uintptr(msSlave | msRec)
	if p, ok := propagationFlags[spec.Linux.RootfsPropagation]; ok {
		prop = p
	}
	if err := mount("", "/", "", prop, ""); err != nil {
		return err
	}
	if prop&msShared != 0 {
		if err := makeParentPrivate(rootfs); err != nil {
			return err
		}
	}
	if err := mount(rootfs, rootfs, "", msBind|msRec, ""); err != nil {
		return err
	}
	devBound := false
	for _, m := range spec.Mounts {
		if err := mountEntry(rootfs, ip.cfg.Bundle, m, cgPaths); err != nil {
			return err
		}
		if filepath.Clean(m.Destination) == "/dev" && isBind(m.Type, parseMountOptions(m.Options)) {
			devBound = true
		}
	}
	if !devBound {
		if err := createDevices(rootfs, spec.Linux.Devices, true); err != nil {
			return err
		}
		if err := devSymlinks(rootfs, spec.Mounts); err != nil {
			return err
		}
	} else if err := createDevices(rootfs, spec.Linux.Devices, false); err != nil {
		return err
	}
	if err := ip.runSetupHooks(spec); err != nil {
		return err
	}
	if ip.cfg.NoPivot {
		if err := moveRoot(rootfs); err != nil {
			return err
		}
	} else if err := pivotRoot(rootfs); err != nil {
		return err
	}
	if spec.Linux.RootfsPropagation != "" {
		// Now that / is the container's root, give it the propagation
		// asked for (doing so before pivot_root could leak mounts).
		if err := mount("", "/", "", prop, ""); err != nil {
			return err
		}
	}
	if err := applySysctls(spec); err != nil {
		return err
	}
	for _, p := range spec.Linux.ReadonlyPaths {
		if err := readonlyPath(p); err != nil {
			return err
		}
	}
	for _, p := range spec.Linux.MaskedPaths {
		if err := maskPath(p); err != nil {
			return err
		}
	}
	if spec.Root.Readonly {
		if err := remountReadonly("/", 0); err != nil {
			return err
		}
	}
	return ip.setupIdentity(spec)
}

// setupShared is setupContainer for a container without its own mount
// namespace.
func (ip *initProc) setupShared(spec *specs.Spec, rootfs string) error {
	if ip.cfg.CgroupNS {
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("unshare cgroup namespace: %w", err)
		}
	}
	if err := ip.runSetupHooks(spec); err != nil {
		return err
	}
	if err := unix.Chroot(rootfs); err != nil {
		return fmt.Errorf("chroot %s: %w", rootfs, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	if err := applySysctls(spec); err != nil {
		return err
	}
	return ip.setupIdentity(spec)
}

// runSetupHooks lets the parent run prestart and createRuntime hooks, then
// runs createContainer hooks.
func (ip *initProc) runSetupHooks(spec *specs.Spec) error {
	if ip.cfg.ParentHooks {
		if err := sendMsg(msgHooks, nil, nil); err != nil {
			return err
		}
		if _, err := ip.expect(msgHooksDone); err != nil {
			return err
		}
	}
	if spec.Hooks != nil && len(spec.Hooks.CreateContainer) > 0 {
		if err := runHooks(context.Background(), "createContainer", spec.Hooks.CreateContainer, ip.state); err != nil {
			return err
		}
	}
	return nil
}

// applySysctls writes spec.Linux.Sysctl below /proc/sys.
func applySysctls(spec *specs.Spec) error {
	for k, v := range spec.Linux.Sysctl {
		p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		if err := os.WriteFile(p, []byte(v), 0); err != nil {
			return fmt.Errorf("sysctl %s: %w", k, err)
		}
	}
	return nil
}

// setupIdentity sets hostname, domainname and the console.
func (ip *initProc) setupIdentity(spec *specs.Spec) error {
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("sethostname: %w", err)
		}
	}
	if spec.Domainname != "" {
		if err := unix.Setdomainname([]byte(spec.Domainname)); err != nil {
			return fmt.Errorf("setdomainname: %w", err)
		}
	}
	if ip.cfg.Process.Terminal {
		return ip.setupConsole(ip.cfg.NewMountNS)
	}
	if _, err := unix.Setsid(); err != nil {
		return fmt.Errorf("setsid: %w", err)
	}
	return nil
}

// setupConsole creates a pty in the container's devpts, sends the master
// to the parent and makes the slave the controlling terminal and stdio.
func (ip *initProc) setupConsole(devConsole bool) error {
	ptmx, err := unix.Open("/dev/pts/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		ptmx, err = unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return fmt.Errorf("open ptmx: %w", err)
	}
	defer unix.Close(ptmx)
	if err := unix.IoctlSetPointerInt(ptmx, unix.TIOCSPTLCK, 0); err != nil {
		return fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetUint32(ptmx, unix.TIOCGPTN)
	if err != nil {
		return fmt.Errorf("ptsname: %w", err)
	}
	name := "/dev/pts/" + strconv.FormatUint(uint64(n), 10)
	slave, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", name, err)
	}
	defer unix.Close(slave)
	if cs := ip.cfg.Process.ConsoleSize; cs != nil {
		ws := &unix.Winsize{Row: uint16(cs.Height), Col: uint16(cs.Width)}
		if err := unix.IoctlSetWinsize(slave, unix.TIOCSWINSZ, ws); err != nil {
			return fmt.Errorf("set console size: %w", err)
		}
	}
	if devConsole {
		if err := bindConsole(name); err != nil {
			return err
		}
	}
	if err := sendMsg(msgConsole, []byte(name), unix.UnixRights(ptmx)); err != nil {
		return err
	}
	if _, err := unix.Setsid(); err != nil && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("setsid: %w", err)
	}
	if err := unix.IoctlSetInt(slave, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("set controlling terminal: %w", err)
	}
	for fd := 0; fd < 3; fd++ {
		if err := unix.Dup3(slave, fd, 0); err != nil {
			return fmt.Errorf("dup console: %w", err)
		}
	}
	return nil
}

// bindConsole bind-mounts the pty slave over /dev/console.
func bindConsole(slave string) error {
	f, err := os.OpenFile("/dev/console", os.O_CREATE|os.O_RDONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create /dev/console: %w", err)
	}
	f.Close()
	return mount(slave, "/dev/console", "", msBind, "")
}

// finish applies the process's identity and execs it.
func (ip *initProc) finish() error {
	p := ip.cfg.Process
	for _, rl := range p.Rlimits {
		res, _ := rlimitValue(rl.Type)
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: rl.Soft, Max: rl.Hard}); err != nil {
			return fmt.Errorf("setrlimit %s: %w", rl.Type, err)
		}
	}
	if err := setPersonalityAndIOPrio(ip.cfg.Spec, p); err != nil {
		return err
	}
	if err := unix.Chdir(p.Cwd); err != nil {
		return fmt.Errorf("chdir to %s: %w", p.Cwd, err)
	}
	env := p.Env
	if !hasEnv(env, "HOME") {
		env = append(env[:len(env):len(env)], "HOME="+homeDir(int(p.User.UID)))
	}
	path, err := lookPath(p.Args[0], env)
	if err != nil {
		return err
	}
	var filter []unix.SockFilter
	if ip.cfg.Seccomp != nil {
		if filter, err = compileSeccomp(ip.cfg.Seccomp, auditArch, syscallNumbers); err != nil {
			return err
		}
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
	} else if filter != nil {
		// Without no_new_privs, loading a filter needs CAP_SYS_ADMIN,
		// which setIdentity may drop.
		if err := installSeccomp(filter); err != nil {
			return err
		}
		filter = nil
	}
	if err := setIdentity(p); err != nil {
		return err
	}
	umask := 0o022
	if p.User.Umask != nil {
		umask = int(*p.User.Umask)
	}
	unix.Umask(umask)
	if err := sendMsg(msgReady, nil, nil); err != nil {
		return err
	}
	if !ip.cfg.Exec {
		if err := waitExecFifo(); err != nil {
			return err
		}
		if h := ip.cfg.Spec.Hooks; h != nil && len(h.StartContainer) > 0 {
			if err := runHooks(context.Background(), "startContainer", h.StartContainer, ip.state); err != nil {
				return err
			}
		}
	}
	if filter != nil {
		// As close to execve as possible.
		if err := installSeccomp(filter); err != nil {
			return err
		}
	}
	if err := unix.Exec(path, p.Args, env); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil
}

// setPersonalityAndIOPrio applies linux.personality (create mode) and
// process.ioPriority, both inherited across execve from this thread.
func setPersonalityAndIOPrio(spec *specs.Spec, p *specs.Process) error {
	if spec != nil && spec.Linux != nil && spec.Linux.Personality != nil {
		v, err := personalityValue(spec.Linux.Personality)
		if err != nil {
			return err
		}
		if _, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, uintptr(v), 0, 0); e != 0 {
			return fmt.Errorf("personality %s: %w", spec.Linux.Personality.Domain, e)
		}
	}
	if p.IOPriority != nil {
		v, err := ioprioValue(p.IOPriority)
		if err != nil {
			return err
		}
		const whoProcess = 1
		if _, _, e := unix.RawSyscall(unix.SYS_IOPRIO_SET, whoProcess, 0, uintptr(v)); e != 0 {
			return fmt.Errorf("ioprio_set: %w", e)
		}
	}
	return nil
}

// closeExtraFds marks every fd above stdio close-on-exec: our sync fds,
// and any fd the runtime's caller leaked into us without O_CLOEXEC.
func closeExtraFds() error {
	err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("close_range: %w", err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list fds: %w", err)
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}

// waitExecFifo blocks until Start opens the exec fifo, then writes the byte
// Start waits for.
func waitExecFifo() error {
	fd, err := unix.Openat(fdStateDir, execFifoName, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open exec fifo: %w", err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte{'0'}); err != nil {
		return fmt.Errorf("write exec fifo: %w", err)
	}
	return nil
}

// setIdentity switches user and groups and sets the capability sets, all
// with per-thread system calls on this (locked) thread.
func setIdentity(p *specs.Process) error {
	caps := p.Capabilities
	if caps != nil {
		keep := capMask(caps.Bounding)
		for c := 0; c < 64; c++ {
			if keep&(1<<uint(c)) != 0 {
				continue
			}
			if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
				if errors.Is(err, unix.EINVAL) {
					break // past the last capability of this kernel
				}
				return fmt.Errorf("drop bounding capability %d: %w", c, err)
			}
		}
		if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set keepcaps: %w", err)
		}
	}
	u := p.User
	gids := make([]uint32, len(u.AdditionalGids))
	copy(gids, u.AdditionalGids)
	var gp uintptr
	if len(gids) > 0 {
		gp = uintptr(unsafe.Pointer(&gids[0]))
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gids)), gp, 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(u.GID), uintptr(u.GID), uintptr(u.GID)); e != 0 {
		return fmt.Errorf("setgid %d: %w", u.GID, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(u.UID), uintptr(u.UID), uintptr(u.UID)); e != 0 {
		return fmt.Errorf("setuid %d: %w", u.UID, e)
	}
	if caps == nil {
		return nil
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("clear keepcaps: %w", err)
	}
	eff, perm, inh := capMask(caps.Effective), capMask(caps.Permitted), capMask(caps.Inheritable)
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(eff), Permitted: uint32(perm), Inheritable: uint32(inh)},
		{Effective: uint32(eff >> 32), Permitted: uint32(perm >> 32), Inheritable: uint32(inh >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	if len(caps.Ambient) > 0 {
		for _, name := range caps.Ambient {
			c, _ := capValue(name)
			// The kernel refuses (EPERM) a capability that is not both
			// permitted and inheritable; like runc and crun, go on
			// without it rather than fail the container.
			err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0)
			if err != nil && !errors.Is(err, unix.EPERM) {
				return fmt.Errorf("raise ambient capability %s: %w", name, err)
			}
		}
	}
	return nil
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

// homeDir looks uid up in the container's /etc/passwd; "/" if absent.
func homeDir(uid int) string {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return "/"
	}
	defer f.Close()
	if h := passwdHome(f, uid); h != "" {
		return h
	}
	return "/"
}

// passwdHome returns the home directory of uid in a passwd(5) file.
func passwdHome(r io.Reader, uid int) string {
	s := bufio.NewScanner(r)
	want := []byte(strconv.Itoa(uid))
	for s.Scan() {
		f := bytes.Split(s.Bytes(), []byte(":"))
		if len(f) >= 6 && bytes.Equal(f[2], want) {
			return string(f[5])
		}
	}
	return ""
}

// defaultPath is searched when the process has no PATH.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookPath finds the executable like execvp would, with the process's own
// PATH, and reports errors in os/exec's words.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		if err := checkExecutable(name); err != nil {
			return "", &exec.Error{Name: name, Err: err}
		}
		return name, nil
	}
	path := defaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return unix.EISDIR
	}
	if fi.Mode()&0o111 == 0 {
		return os.ErrPermission
	}
	return nil
}
