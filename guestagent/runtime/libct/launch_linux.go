package libct

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/guestagent/cgroups"
)

// File descriptors of a freshly started init.
const (
	fdSync     = 3 // sync socket (SOCK_SEQPACKET)
	fdConfig   = 4 // config pipe, read end
	fdStateDir = 5 // Root/<id>, O_PATH, holding the exec fifo (create mode)
	fdMountNS  = 5 // container's mount namespace (exec mode)
)

// nsJoin is a namespace to join before forking init.
type nsJoin struct {
	typ  specs.LinuxNamespaceType
	path string
	f    *os.File // already open (Exec); else path is opened
}

// launch is one start of the agent binary as init.
type launch struct {
	id            string
	cfg           *initConfig
	cloneflags    uintptr
	uidMaps       []syscall.SysProcIDMap
	gidMaps       []syscall.SysProcIDMap
	join          []nsJoin
	stdio         Stdio
	extra         []*os.File
	cg            cgroups.Manager
	consoleSocket string
	// state returns the state JSON given to hooks, for init's pid.
	state func(pid int) []byte
	// hooks runs the prestart and createRuntime hooks (create mode).
	hooks func(state []byte) error
}

// initExe is the sealed memfd copy of our own binary, made once.
var initExe struct {
	once sync.Once
	path string
	err  error
}

// initExePath returns "/proc/self/fd/N" for our own binary as seen through
// a private read-only mount (or, where that is not available, a sealed
// memfd copy), so that a container can never write to the binary that the
// host runs (CVE-2019-5736): init's /proc/<pid>/exe is read-only.
func initExePath() (string, error) {
	initExe.once.Do(func() {
		initExe.path, initExe.err = readonlySelf()
		if initExe.err != nil {
			initExe.path, initExe.err = sealedSelfCopy()
		}
	})
	return initExe.path, initExe.err
}

// readonlySelf clones the mount of /proc/self/exe into a detached,
// read-only mount of just that file: no copy of the binary is needed.
func readonlySelf() (string, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, "/proc/self/exe", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return "", fmt.Errorf("open_tree own binary: %w", err)
	}
	defer unix.Close(fd)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return "", fmt.Errorf("make own binary read-only: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil || st.Flags&unix.ST_RDONLY == 0 {
		return "", fmt.Errorf("own binary's mount is not read-only (%v)", err)
	}
	hi, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 100)
	if err != nil {
		return "", fmt.Errorf("dup own binary: %w", err)
	}
	return "/proc/self/fd/" + strconv.Itoa(hi), nil
}

func sealedSelfCopy() (string, error) {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return "", fmt.Errorf("open own binary: %w", err)
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("berth-init", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate("berth-init", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return "", fmt.Errorf("memfd_create: %w", err)
	}
	rw := os.NewFile(uintptr(fd), "berth-init")
	defer rw.Close()
	if err := copyFile(rw, src); err != nil {
		return "", fmt.Errorf("copy own binary: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		return "", fmt.Errorf("seal own binary copy: %w", err)
	}
	// execve refuses a file that is open for writing: keep only a read-only
	// descriptor, at a number high enough that fork/exec's fd shuffling
	// (stdio and extra files) can never overwrite it.
	ro, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("reopen own binary copy: %w", err)
	}
	hi, err := unix.FcntlInt(uintptr(ro), unix.F_DUPFD_CLOEXEC, 100)
	unix.Close(ro)
	if err != nil {
		return "", fmt.Errorf("dup own binary copy: %w", err)
	}
	return "/proc/self/fd/" + strconv.Itoa(hi), nil
}

// copyFile copies src to dst in the kernel with sendfile (copy_file_range
// cannot cross into a memfd), falling back to a user-space copy.
func copyFile(dst, src *os.File) error {
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	left := fi.Size()
	for left > 0 {
		n, err := unix.Sendfile(int(dst.Fd()), int(src.Fd()), nil, int(min(left, 1<<30)))
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
				_, err = io.Copy(dst, src)
			}
			return err
		}
		if n == 0 {
			break
		}
		left -= int64(n)
	}
	return nil
}

// devNull is /dev/null, opened once, for missing stdio.
var devNull struct {
	once sync.Once
	f    *os.File
	err  error
}

func openDevNull() (*os.File, error) {
	devNull.once.Do(func() {
		devNull.f, devNull.err = os.OpenFile(os.DevNull, os.O_RDWR, 0)
	})
	return devNull.f, devNull.err
}

// run starts init, feeds it its config, places it in the cgroup and
// follows the set-up until init reports ready (create) or has exec'd (exec).
func (l *launch) run(ctx context.Context) (*Process, error) {
	exe, err := initExePath()
	if err != nil {
		return nil, err
	}
	null, err := openDevNull()
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sync socketpair: %w", err)
	}
	parentSock := os.NewFile(uintptr(fds[0]), "sync-parent")
	childSock := os.NewFile(uintptr(fds[1]), "sync-child")
	defer parentSock.Close()
	defer childSock.Close()
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("config pipe: %w", err)
	}
	defer cfgR.Close()
	defer cfgW.Close()

	files := []*os.File{orNull(l.stdio.Stdin, null), orNull(l.stdio.Stdout, null), orNull(l.stdio.Stderr, null), childSock, cfgR}
	files = append(files, l.extra...)
	attr := &os.ProcAttr{
		Files: files,
		Env:   []string{"GOGC=off"},
		Sys: &syscall.SysProcAttr{
			Cloneflags:                 l.cloneflags,
			UidMappings:                l.uidMaps,
			GidMappings:                l.gidMaps,
			GidMappingsEnableSetgroups: len(l.gidMaps) > 0,
		},
	}
	if len(l.uidMaps) > 0 {
		// Become the user namespace's root, so init keeps its capabilities
		// across the re-exec.
		attr.Sys.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	argv := []string{"berth-init", InitArg}
	var p *os.Process
	if len(l.join) == 0 {
		p, err = os.StartProcess(exe, argv, attr)
	} else {
		p, err = startInNamespaces(exe, argv, attr, l.join)
	}
	if err != nil {
		return nil, fmt.Errorf("start init: %w", err)
	}
	proc := &Process{Pid: p.Pid, proc: p}
	ok := false
	defer func() {
		if !ok {
			_ = p.Kill()
			_, _ = p.Wait()
			if proc.Console != nil {
				proc.Console.Close()
			}
		}
	}()
	childSock.Close()
	cfgR.Close()

	cfg, err := json.Marshal(l.cfg)
	if err != nil {
		return nil, fmt.Errorf("encode init config: %w", err)
	}
	if _, err := cfgW.Write(cfg); err != nil {
		return nil, l.childError(p, fmt.Errorf("send init config: %w", err))
	}
	cfgW.Close()

	if err := l.cg.Add(p.Pid); err != nil {
		return nil, fmt.Errorf("add init to cgroup: %w", err)
	}
	if l.cfg.Process.OOMScoreAdj != nil {
		adj := []byte(strconv.Itoa(*l.cfg.Process.OOMScoreAdj))
		if err := os.WriteFile("/proc/"+strconv.Itoa(p.Pid)+"/oom_score_adj", adj, 0); err != nil {
			return nil, fmt.Errorf("set oom_score_adj: %w", err)
		}
	}

	fc, err := net.FileConn(parentSock)
	if err != nil {
		return nil, fmt.Errorf("sync socket: %w", err)
	}
	conn := fc.(*net.UnixConn)
	defer conn.Close()
	parentSock.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	var state []byte
	if l.state != nil {
		state = l.state(p.Pid)
	}
	if _, err := conn.Write(encodeMsg(msgGo, state)); err != nil {
		return nil, l.childError(p, fmt.Errorf("release init: %w", err))
	}
	buf := make([]byte, maxMsg)
	oob := make([]byte, unix.CmsgSpace(4))
	ready := false
	for {
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if errors.Is(err, io.EOF) {
			n, err = 0, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, l.childError(p, fmt.Errorf("sync with init: %w", err))
		}
		if n == 0 {
			if ready && l.cfg.Exec {
				ok = true
				return proc, nil
			}
			return nil, l.childError(p, errors.New("init exited during set-up"))
		}
		typ, payload, err := decodeMsg(buf[:n])
		if err != nil {
			return nil, err
		}
		switch typ {
		case msgError:
			return nil, errors.New(string(payload))
		case msgHooks:
			if l.hooks != nil {
				if err := l.hooks(state); err != nil {
					_, _ = conn.Write(encodeMsg(msgError, []byte(err.Error())))
					return nil, err
				}
			}
			if _, err := conn.Write(encodeMsg(msgHooksDone, nil)); err != nil {
				return nil, l.childError(p, fmt.Errorf("sync with init: %w", err))
			}
		case msgConsole:
			if err := l.console(proc, string(payload), oob[:oobn]); err != nil {
				return nil, err
			}
		case msgReady:
			if !l.cfg.Exec {
				ok = true
				return proc, nil
			}
			ready = true
		default:
			return nil, fmt.Errorf("sync with init: unexpected message %q", typ)
		}
	}
}

// childError adds init's exit status to err when init dies within a second
// (its end of the sync socket closes a moment before it exits); otherwise
// err is returned as is and the caller kills init.
func (l *launch) childError(p *os.Process, err error) error {
	pfd, perr := unix.PidfdOpen(p.Pid, 0)
	if perr != nil {
		return err
	}
	defer unix.Close(pfd)
	fds := []unix.PollFd{{Fd: int32(pfd), Events: unix.POLLIN}}
	if n, perr := unix.Poll(fds, 1000); perr != nil || n == 0 {
		return err
	}
	ps, werr := p.Wait()
	if werr != nil {
		return err
	}
	return fmt.Errorf("%w (init %s)", err, ps)
}

// console takes the pty master out of a msgConsole and hands it on.
func (l *launch) console(proc *Process, name string, oob []byte) error {
	fd, err := parseRights(oob)
	if err != nil {
		return fmt.Errorf("receive console: %w", err)
	}
	master := os.NewFile(uintptr(fd), name)
	if l.consoleSocket == "" {
		proc.Console = master
		return nil
	}
	defer master.Close()
	if err := sendConsole(l.consoleSocket, master, name); err != nil {
		return err
	}
	return nil
}

// parseRights returns the single fd passed in a control message.
func parseRights(oob []byte) (int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return -1, err
	}
	var fds []int
	for _, m := range msgs {
		f, err := unix.ParseUnixRights(&m)
		if err != nil {
			return -1, err
		}
		fds = append(fds, f...)
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("got %d fds, want 1", len(fds))
	}
	unix.CloseOnExec(fds[0])
	return fds[0], nil
}

// sendConsole sends the pty master to a console socket the way runc does:
// one message whose payload is the pty name, with the fd as SCM_RIGHTS.
func sendConsole(path string, master *os.File, name string) error {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("console socket %s: %w", path, err)
	}
	defer c.Close()
	if _, _, err := c.WriteMsgUnix([]byte(name), unix.UnixRights(int(master.Fd())), nil); err != nil {
		return fmt.Errorf("console socket %s: %w", path, err)
	}
	return nil
}

func orNull(f, null *os.File) *os.File {
	if f == nil {
		return null
	}
	return f
}

// startInNamespaces forks init from a dedicated OS thread that first joined
// the given namespaces: the child inherits the thread's namespaces (setns
// of a pid namespace applies to children only, which is what we want). The
// thread stays locked, so it is destroyed when its goroutine ends and no
// other goroutine ever runs in those namespaces. The main thread is never
// used: the runtime cannot destroy it, and /proc/self shows its namespaces.
func startInNamespaces(exe string, argv []string, attr *os.ProcAttr, join []nsJoin) (*os.Process, error) {
	type result struct {
		p   *os.Process
		err error
	}
	fork := func() result {
		// Never unlocked: the thread dies with the calling goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			return result{nil, fmt.Errorf("unshare fs: %w", err)}
		}
		for _, j := range join {
			f := j.f
			if f == nil {
				var err error
				if f, err = os.Open(j.path); err != nil {
					return result{nil, fmt.Errorf("open namespace: %w", err)}
				}
				defer f.Close()
			}
			if err := unix.Setns(int(f.Fd()), int(cloneFlags[j.typ])); err != nil {
				return result{nil, fmt.Errorf("join namespace %s: %w", j.path, err)}
			}
		}
		p, err := os.StartProcess(exe, argv, attr)
		return result{p, err}
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			ch <- fork()
			return
		}
		// On the main thread: keep it busy so that a new goroutine must
		// run on another thread, then give the main thread back untouched.
		inner := make(chan result, 1)
		go func() { inner <- fork() }()
		ch <- <-inner
		runtime.UnlockOSThread()
	}()
	r := <-ch
	return r.p, r.err
}
