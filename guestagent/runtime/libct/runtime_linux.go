package libct

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/guestagent/cgroups"
)

// newCgroupManager is cgroups.New; tests may replace it.
var newCgroupManager = cgroups.New

// defaultRoot is the state directory when Runtime.Root is empty.
const defaultRoot = "/run/berth/oci"

func (r *Runtime) root() string {
	if r.Root == "" {
		return defaultRoot
	}
	return r.Root
}

func (r *Runtime) log() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// cloneFlags maps namespace types to clone(2) flags.
var cloneFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.UserNamespace:    unix.CLONE_NEWUSER,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
	specs.TimeNamespace:    unix.CLONE_NEWTIME,
}

func (r *Runtime) create(ctx context.Context, id, bundle string, opts CreateOpts) (_ *Process, retErr error) {
	if err := validateID(id); err != nil {
		return nil, err
	}
	bundle, err := filepath.Abs(bundle)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", bundle, err)
	}
	raw, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("read spec of %s: %w", id, err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("decode %s: %v: %w", filepath.Join(bundle, "config.json"), err, ErrInvalidSpec)
	}
	if err := validateSpec(&spec); err != nil {
		return nil, err
	}
	rootfs := spec.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	if fi, err := os.Stat(rootfs); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("rootfs %s is not a directory: %w", rootfs, ErrInvalidSpec)
	}

	if spec.Linux.Seccomp != nil {
		if _, err := compileSeccomp(spec.Linux.Seccomp, auditArch, syscallNumbers); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(r.root(), 0o700); err != nil {
		return nil, fmt.Errorf("create state root: %w", err)
	}
	dir := filepath.Join(r.root(), id)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("container %s: %w", id, ErrExist)
		}
		return nil, fmt.Errorf("create state dir of %s: %w", id, err)
	}
	var cg cgroups.Manager
	var proc *Process
	defer func() {
		if retErr == nil {
			return
		}
		if proc != nil {
			_ = proc.proc.Kill()
			_, _ = proc.proc.Wait()
			if proc.Console != nil {
				proc.Console.Close()
			}
		}
		if cg != nil {
			_ = cg.Delete()
		}
		_ = os.RemoveAll(dir)
	}()

	cgPath := spec.Linux.CgroupsPath
	if cgPath == "" {
		cgPath = "berth/" + id
	}
	st := &containerState{
		ID:          id,
		Bundle:      bundle,
		Rootfs:      rootfs,
		Annotations: spec.Annotations,
		CgroupPath:  cgPath,
		Config:      &spec,
	}
	if err := saveState(dir, st); err != nil {
		return nil, err
	}
	fifoPath := filepath.Join(dir, execFifoName)
	if err := unix.Mkfifo(fifoPath, 0o600); err != nil {
		return nil, fmt.Errorf("create exec fifo of %s: %w", id, err)
	}
	if uid, gid, ok := hostRoot(spec.Linux); ok {
		// Init runs as the user namespace's root: let it open the fifo.
		if err := os.Chown(fifoPath, uid, gid); err != nil {
			return nil, fmt.Errorf("chown exec fifo of %s: %w", id, err)
		}
	}
	// Init opens the fifo relative to this directory: no /proc needed.
	dirFile, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open state dir of %s: %w", id, err)
	}
	defer dirFile.Close()

	cg, err = newCgroupManager(cgPath)
	if err != nil {
		return nil, fmt.Errorf("cgroup of %s: %w", id, err)
	}
	// The limits are applied once init is set up (as runc does): init is a
	// Go program whose threads would count against a small pids limit, and
	// it creates device nodes before the device rules apply.
	if err := cg.Create(nil); err != nil {
		return nil, fmt.Errorf("cgroup of %s: %w", id, err)
	}

	l := &launch{
		id:            id,
		cfg:           &initConfig{ID: id, Spec: &spec, Process: spec.Process, Rootfs: rootfs, Bundle: bundle, NoPivot: opts.NoPivot, Seccomp: spec.Linux.Seccomp},
		stdio:         opts.Stdio,
		extra:         []*os.File{dirFile},
		cg:            cg,
		consoleSocket: opts.ConsoleSocket,
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.MountNamespace {
			l.cfg.NewMountNS = true
		}
		if ns.Path != "" {
			l.join = append(l.join, nsJoin{typ: ns.Type, path: ns.Path})
			continue
		}
		if ns.Type == specs.CgroupNamespace {
			l.cfg.CgroupNS = true
			continue
		}
		l.cloneflags |= cloneFlags[ns.Type]
	}
	if spec.Linux.UIDMappings != nil || spec.Linux.GIDMappings != nil {
		l.uidMaps = idMaps(spec.Linux.UIDMappings)
		l.gidMaps = idMaps(spec.Linux.GIDMappings)
	}
	if h := spec.Hooks; h != nil && (len(h.Prestart) > 0 || len(h.CreateRuntime) > 0) { //nolint:staticcheck // prestart is deprecated but still run
		l.cfg.ParentHooks = true
		l.hooks = func(state []byte) error {
			if err := runHooks(ctx, "prestart", h.Prestart, state); err != nil { //nolint:staticcheck
				return err
			}
			return runHooks(ctx, "createRuntime", h.CreateRuntime, state)
		}
	}
	l.state = func(pid int) []byte {
		s := *st
		s.InitPid = pid
		b, _ := json.Marshal(s.ociState(specs.StateCreated))
		return b
	}
	proc, err = l.run(ctx)
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", id, err)
	}
	if err := cg.Update(withDefaultDevices(spec.Linux.Resources, spec.Linux.Devices)); err != nil {
		return nil, fmt.Errorf("create container %s: cgroup limits: %w", id, err)
	}
	st.InitPid = proc.Pid
	st.Created = time.Now().UTC()
	info := readProcInfo(proc.Pid)
	if !info.Exists {
		return nil, fmt.Errorf("create container %s: init exited", id)
	}
	st.InitStart = info.Start
	if err := saveState(dir, st); err != nil {
		return nil, err
	}
	if opts.PidFile != "" {
		if err := writeFileAtomic(opts.PidFile, []byte(strconv.Itoa(proc.Pid)), 0o644); err != nil {
			return nil, err
		}
	}
	return proc, nil
}

// sameFile reports whether two paths name the same inode (both existing).
func sameFile(a, b string) bool {
	var sa, sb unix.Stat_t
	return unix.Stat(a, &sa) == nil && unix.Stat(b, &sb) == nil && sa.Ino == sb.Ino && sa.Dev == sb.Dev
}

// nsTypes maps /proc/<pid>/ns names to namespace types.
var nsTypes = map[string]specs.LinuxNamespaceType{
	"pid": specs.PIDNamespace, "net": specs.NetworkNamespace, "mnt": specs.MountNamespace,
	"ipc": specs.IPCNamespace, "uts": specs.UTSNamespace, "user": specs.UserNamespace,
	"cgroup": specs.CgroupNamespace, "time": specs.TimeNamespace,
}

// hostRoot returns the host uid and gid of a user namespace's root.
func hostRoot(l *specs.Linux) (uid, gid int, ok bool) {
	find := func(m []specs.LinuxIDMapping) (int, bool) {
		for _, x := range m {
			if x.ContainerID == 0 && x.Size > 0 {
				return int(x.HostID), true
			}
		}
		return 0, false
	}
	uid, uok := find(l.UIDMappings)
	gid, gok := find(l.GIDMappings)
	return uid, gid, uok || gok
}

func idMaps(m []specs.LinuxIDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, 0, len(m))
	for _, x := range m {
		out = append(out, syscall.SysProcIDMap{ContainerID: int(x.ContainerID), HostID: int(x.HostID), Size: int(x.Size)})
	}
	return out
}

// container is a loaded container with its live status.
type container struct {
	dir    string
	st     *containerState
	status specs.ContainerState
}

func (r *Runtime) load(id string) (*container, error) {
	if err := validateID(id); err != nil {
		return nil, err
	}
	dir := filepath.Join(r.root(), id)
	st, err := loadState(dir, id)
	if err != nil {
		return nil, err
	}
	var info procInfo
	if st.InitPid != 0 {
		info = readProcInfo(st.InitPid)
	}
	_, ferr := os.Lstat(filepath.Join(dir, execFifoName))
	return &container{dir: dir, st: st, status: computeStatus(st, info, ferr == nil)}, nil
}

func (r *Runtime) state(id string) (*specs.State, error) {
	c, err := r.load(id)
	if err != nil {
		return nil, err
	}
	return c.st.ociState(c.status), nil
}

func (r *Runtime) list() ([]*specs.State, error) {
	ents, err := os.ReadDir(r.root())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []*specs.State
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		s, err := r.state(e.Name())
		if err != nil {
			if errors.Is(err, ErrNotExist) || errors.Is(err, ErrInvalidID) {
				continue
			}
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// pidfd opens a pidfd for the container's init and checks that the pid was
// not reused since the container was created.
func (c *container) pidfd() (int, error) {
	fd, err := unix.PidfdOpen(c.st.InitPid, unix.PIDFD_NONBLOCK)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return -1, fmt.Errorf("container %s: %w", c.st.ID, ErrNotRunning)
		}
		return -1, fmt.Errorf("pidfd of %s: %w", c.st.ID, err)
	}
	if info := readProcInfo(c.st.InitPid); !info.Exists || info.Zombie || info.Start != c.st.InitStart {
		unix.Close(fd)
		return -1, fmt.Errorf("container %s: %w", c.st.ID, ErrNotRunning)
	}
	return fd, nil
}

func (r *Runtime) start(ctx context.Context, id string) error {
	c, err := r.load(id)
	if err != nil {
		return err
	}
	if c.status != specs.StateCreated {
		return fmt.Errorf("start %s (status %s): %w", id, c.status, ErrNotCreated)
	}
	pfd, err := c.pidfd()
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	fifoPath := filepath.Join(c.dir, execFifoName)
	ffd, err := unix.Open(fifoPath, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("start %s: %w", id, ErrNotCreated)
		}
		return fmt.Errorf("start %s: open exec fifo: %w", id, err)
	}
	defer unix.Close(ffd)
	if err := awaitFifo(ctx, ffd, pfd); err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	if err := os.Remove(fifoPath); err != nil {
		return fmt.Errorf("start %s: %w", id, err)
	}
	if h := c.st.Config.Hooks; h != nil && len(h.Poststart) > 0 {
		state, _ := json.Marshal(c.st.ociState(specs.StateRunning))
		runHooksWarn(ctx, r.log(), id, "poststart", h.Poststart, state)
	}
	return nil
}

// awaitFifo waits until init wrote its byte into the exec fifo, or exited.
func awaitFifo(ctx context.Context, ffd, pfd int) error {
	fds := []unix.PollFd{{Fd: int32(ffd), Events: unix.POLLIN}, {Fd: int32(pfd), Events: unix.POLLIN}}
	for {
		timeout := -1
		if ctx.Done() != nil {
			timeout = 100
		}
		n, err := unix.Poll(fds, timeout)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("poll exec fifo: %w", err)
		}
		if n > 0 && fds[0].Revents != 0 {
			var b [1]byte
			m, err := unix.Read(ffd, b[:])
			if m == 1 {
				return nil
			}
			if err != nil && !errors.Is(err, unix.EAGAIN) {
				return fmt.Errorf("read exec fifo: %w", err)
			}
			if fds[0].Revents&unix.POLLHUP != 0 {
				return fmt.Errorf("init closed the exec fifo: %w", ErrNotRunning)
			}
		}
		if n > 0 && fds[1].Revents != 0 {
			return fmt.Errorf("init exited: %w", ErrNotRunning)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

func (r *Runtime) kill(id string, sig syscall.Signal, all bool) error {
	c, err := r.load(id)
	if err != nil {
		return err
	}
	if c.status != specs.StateCreated && c.status != specs.StateRunning {
		return fmt.Errorf("kill %s (status %s): %w", id, c.status, ErrNotRunning)
	}
	if all {
		cg, err := newCgroupManager(c.st.CgroupPath)
		if err != nil {
			return fmt.Errorf("kill %s: %w", id, err)
		}
		if err := cg.Signal(sig); err != nil {
			return fmt.Errorf("kill %s: %w", id, err)
		}
		return nil
	}
	pfd, err := c.pidfd()
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := unix.PidfdSendSignal(pfd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("kill %s: %w", id, ErrNotRunning)
		}
		return fmt.Errorf("kill %s: %w", id, err)
	}
	return nil
}

func (r *Runtime) delete(ctx context.Context, id string, force bool) error {
	c, err := r.load(id)
	if err != nil {
		return err
	}
	switch c.status {
	case specs.StateRunning:
		if !force {
			return fmt.Errorf("delete %s: %w", id, ErrRunning)
		}
		fallthrough
	case specs.StateCreated:
		if err := killAndWait(ctx, c); err != nil {
			return fmt.Errorf("delete %s: %w", id, err)
		}
	case specs.StateCreating:
		if !force {
			return fmt.Errorf("delete %s: container is still being created: %w", id, ErrRunning)
		}
	}
	cg, err := newCgroupManager(c.st.CgroupPath)
	if err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	if pids, err := cg.Pids(); err == nil && len(pids) > 0 {
		_ = cg.Signal(unix.SIGKILL)
	}
	if err := cg.Delete(); err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	if h := c.st.Config.Hooks; h != nil && len(h.Poststop) > 0 {
		state, _ := json.Marshal(c.st.ociState(specs.StateStopped))
		runHooksWarn(ctx, r.log(), id, "poststop", h.Poststop, state)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	return nil
}

// killAndWait SIGKILLs init and waits until it has exited.
func killAndWait(ctx context.Context, c *container) error {
	pfd, err := c.pidfd()
	if err != nil {
		if errors.Is(err, ErrNotRunning) {
			return nil
		}
		return err
	}
	defer unix.Close(pfd)
	if err := unix.PidfdSendSignal(pfd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill init: %w", err)
	}
	// An init of a pid namespace finishes exiting only once every process
	// of the namespace has been reaped; a process started by Exec whose
	// parent does not reap it would hold us here forever, so the wait is
	// bounded (the processes are dead either way).
	deadline := time.Now().Add(killWait)
	fds := []unix.PollFd{{Fd: int32(pfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("wait for init: %w", err)
		}
		if n > 0 || time.Now().After(deadline) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// killWait bounds how long Delete waits for a SIGKILLed init to exit.
const killWait = 5 * time.Second

func (r *Runtime) exec(ctx context.Context, id string, proc *specs.Process, opts ExecOpts) (*Process, error) {
	if err := validateProcess(proc); err != nil {
		return nil, err
	}
	c, err := r.load(id)
	if err != nil {
		return nil, err
	}
	if c.status != specs.StateRunning && c.status != specs.StateCreated {
		return nil, fmt.Errorf("exec in %s (status %s): %w", id, c.status, ErrNotRunning)
	}
	l := &launch{
		id:            id,
		cfg:           &initConfig{Exec: true, ID: id, Process: proc},
		stdio:         opts.Stdio,
		consoleSocket: opts.ConsoleSocket,
	}
	if c.st.Config != nil && c.st.Config.Linux != nil {
		l.cfg.Seccomp = c.st.Config.Linux.Seccomp
	}
	if proc.Capabilities == nil && c.st.Config != nil && c.st.Config.Process != nil && c.st.Config.Process.Capabilities != nil {
		// Never more privilege than the container's own process.
		p := *proc
		p.Capabilities = c.st.Config.Process.Capabilities
		l.cfg.Process = &p
	}
	// Open init's namespaces, then check that the pid is still init.
	self := "/proc/self/ns/"
	initNS := "/proc/" + strconv.Itoa(c.st.InitPid) + "/ns/"
	if !sameFile(self+"user", initNS+"user") {
		// A multi-threaded process cannot join a user namespace, and a
		// process outside it would be the host's root in the container.
		return nil, fmt.Errorf("exec in %s: container has its own user namespace: %w", id, ErrNotSupported)
	}
	for _, name := range []string{"cgroup", "ipc", "uts", "net", "pid", "mnt"} {
		var a, b unix.Stat_t
		if err := unix.Stat(initNS+name, &b); err != nil {
			if errors.Is(err, unix.ENOENT) && name == "cgroup" {
				continue
			}
			return nil, fmt.Errorf("exec in %s: %w", id, err)
		}
		if err := unix.Stat(self+name, &a); err == nil && a.Ino == b.Ino && a.Dev == b.Dev {
			continue
		}
		f, err := os.Open(initNS + name)
		if err != nil {
			return nil, fmt.Errorf("exec in %s: %w", id, err)
		}
		defer f.Close()
		if name == "mnt" {
			// The child joins the mount namespace itself (see
			// initConfig.JoinMountNS).
			l.cfg.JoinMountNS = true
			l.extra = append(l.extra, f)
			continue
		}
		l.join = append(l.join, nsJoin{typ: nsTypes[name], f: f, path: initNS + name})
	}
	if info := readProcInfo(c.st.InitPid); !info.Exists || info.Zombie || info.Start != c.st.InitStart {
		return nil, fmt.Errorf("exec in %s: %w", id, ErrNotRunning)
	}
	l.cg, err = newCgroupManager(c.st.CgroupPath)
	if err != nil {
		return nil, fmt.Errorf("exec in %s: %w", id, err)
	}
	l.state = func(int) []byte {
		b, _ := json.Marshal(c.st.ociState(c.status))
		return b
	}
	p, err := l.run(ctx)
	if err != nil {
		return nil, fmt.Errorf("exec in %s: %w", id, err)
	}
	if opts.PidFile != "" {
		if err := writeFileAtomic(opts.PidFile, []byte(strconv.Itoa(p.Pid)), 0o644); err != nil {
			_ = p.proc.Kill()
			_, _ = p.proc.Wait()
			if p.Console != nil {
				p.Console.Close()
			}
			return nil, err
		}
	}
	return p, nil
}
