package sysinit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/vmimage/instance"
)

// Options configures Run.
type Options struct {
	// Exe is the agent binary the engine child runs ("/init").
	Exe string
	// Logger receives sysinit's log (the serial console).
	Logger *slog.Logger
}

// Timeouts of boot and shutdown.
const (
	deviceWait   = 5 * time.Second  // for a device node to appear after its driver loaded
	engineGrace  = 12 * time.Second // the engine's own shutdown takes up to 10 s
	processGrace = 5 * time.Second  // for containers to exit on SIGTERM
)

// system is PID 1's state.
type system struct {
	log     *slog.Logger
	exe     string
	reaper  *reaper
	console *os.File

	mu      sync.Mutex // guards mounted: the shares are mounted in the background
	mounted []Mount
}

// Run performs PID 1's duties (see the package documentation). It returns only if it could not end the
// machine; a boot step that fails fatally shuts the machine down (the host then sees the serial log).
func Run(opts Options) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	log = slog.New(uptimeHandler{log.Handler()})
	log.Info("init started")
	s := &system{log: log, exe: opts.Exe, console: os.Stderr}
	if s.exe == "" {
		s.exe = "/init"
	}
	t0 := time.Now()
	// Before anything else: without Notify, Go exits on SIGTERM, SIGINT, SIGHUP and SIGQUIT, and PID 1
	// exiting panics the kernel. A handler (unlike SIG_IGN) is not inherited by the engine across exec.
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, unix.SIGTERM, unix.SIGINT, unix.SIGPWR, unix.SIGUSR1, unix.SIGUSR2, unix.SIGHUP, unix.SIGQUIT)
	// Ctrl-Alt-Del becomes SIGINT to PID 1 (a clean shutdown) instead of an immediate reboot.
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)
	if err := leaveRootfs(); err != nil {
		log.Warn("cannot leave the initial rootfs: containers cannot pivot_root", "err", err)
	}
	for _, m := range BaseMounts() {
		if err := s.mount(m); err != nil {
			if m.Optional {
				log.Warn("optional mount failed", "err", err)
				continue
			}
			return s.fail(err)
		}
	}
	s.reaper = newReaper(log)
	if err := s.enableControllers(); err != nil {
		log.Warn("cgroup controllers", "err", err)
	}
	cfg, err := instance.Load("/")
	if err != nil {
		return s.fail(err)
	}
	// The boot stage's modules (virtio, uplink, data disk) now; the network stage's (bridge, nftables),
	// the background stage's (control port, 9p/virtiofs, overlayfs) and the late stage's while the
	// uplink, the data disk and the engine come up. The shares need the background stage. NetworkDone and
	// BootDone tell the engine (EngineArgv) when it may set up container networking and open its
	// containers.
	s.loadModules(ModuleList, "boot")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	poweroff := make(chan string, 1)
	go func() {
		s.loadModules(NetworkModuleList, "network")
		if err := markDone(NetworkDone); err != nil {
			log.Error("the engine will wait for the network modules in vain", "err", err)
		}
		s.loadModules(BackgroundModuleList, "background")
		s.shares(cfg)
		// The control port is open before the engine answers (it waits for BootDone), so that the host's
		// first lines (the clock, a quick poweroff) find a reader: a line sent to a port the guest has
		// not opened yet can be lost.
		if ctl := s.openControl(); ctl != nil {
			go s.control(ctx, ctl, poweroff)
		}
		if err := markDone(BootDone); err != nil {
			log.Error("the engine will wait for the end of the boot in vain", "err", err)
			return
		}
		log.Info("system ready", "init", time.Since(t0).Round(time.Millisecond), "time", time.Now().UTC().Format(time.RFC3339))
		s.loadModules(LateModuleList, "late")
		// PID 1 idles from here on: hand the boot's garbage back to the (small) VM.
		debug.FreeOSMemory()
	}()
	if now := time.Now(); now.Year() < 2024 {
		log.Warn("the clock looks unset (no RTC?)", "time", now.UTC())
	}
	// The uplink and the data disk are independent: set them up side by side.
	diskErr := make(chan error, 1)
	go func() { diskErr <- s.dataDisk(cfg) }()
	netErr := s.network(cfg)
	if err := errors.Join(netErr, <-diskErr); err != nil {
		return s.fail(err)
	}

	engineDone := make(chan struct{})
	go func() {
		defer close(engineDone)
		s.superviseEngine(ctx, EngineArgv(s.exe, cfg))
	}()

	var why string
	for why == "" {
		select {
		case sig := <-sigc:
			if sig == unix.SIGHUP || sig == unix.SIGQUIT {
				log.Info("ignoring signal", "signal", sig)
				continue
			}
			why = "signal " + sig.String()
		case why = <-poweroff:
		}
	}
	log.Info("shutting down", "reason", why)
	cancel()
	<-engineDone
	return s.shutdown()
}

// fail logs a fatal boot error and ends the machine.
func (s *system) fail(err error) error {
	s.log.Error("boot failed; powering off", "err", err)
	if serr := s.shutdown(); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

// leaveRootfs makes a bind mount of the initial rootfs the root: pivot_root(2) refuses a root mount
// without a parent, which the initial rootfs is, and every container's runtime pivots.
func leaveRootfs() error {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return fmt.Errorf("statfs /: %w", err)
	}
	if st.Type != unix.RAMFS_MAGIC && st.Type != unix.TMPFS_MAGIC {
		return nil
	}
	const dir = "/mnt"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("/", dir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind / on %s: %w", dir, err)
	}
	if err := unix.Chdir(dir); err != nil {
		return fmt.Errorf("chdir %s: %w", dir, err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s to /: %w", dir, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	return unix.Chdir("/")
}

func (s *system) mount(m Mount) error {
	if err := os.MkdirAll(m.Target, 0o755); err != nil {
		return fmt.Errorf("mount %s: %w", m.Target, err)
	}
	if err := unix.Mount(m.Source, m.Target, m.FSType, m.Flags, m.Data); err != nil {
		return fmt.Errorf("mount %s: %w", m, err)
	}
	s.mu.Lock()
	s.mounted = append(s.mounted, m)
	s.mu.Unlock()
	return nil
}

// enableControllers lets child cgroups use every controller. sysinit and the engine stay in the root
// cgroup, the one cgroup v2 exempts from the "no internal processes" rule: the engine places containers
// below its own cgroup (cgroups package), so it must be in the root or in a leaf, and in a leaf its
// containers' cgroups would sit below a cgroup with processes.
func (s *system) enableControllers() error {
	b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	if err != nil {
		return err
	}
	w := Controllers(string(b))
	if w == "" {
		return nil
	}
	if err := os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte(w), 0o644); err != nil {
		return fmt.Errorf("enable %q: %w", w, err)
	}
	return nil
}

// waitFor polls until path exists.
func waitFor(path string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *system) network(cfg instance.Config) error {
	host := Hostname(cfg)
	if err := unix.Sethostname([]byte(host)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	p, err := PlanNetwork(cfg.Network)
	if err != nil {
		return err
	}
	for name, b := range map[string][]byte{
		"/etc/hostname":    []byte(host + "\n"),
		"/etc/hosts":       HostsFile(host),
		"/etc/resolv.conf": ResolvConf(p),
	} {
		if err := os.WriteFile(name, b, 0o644); err != nil {
			return err
		}
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	var link netlink.Link
	deadline := time.Now().Add(deviceWait)
	for {
		if link, err = netlink.LinkByName(p.Interface); err == nil {
			break
		}
		if time.Now().After(deadline) {
			// No uplink is not fatal: the host still reaches the agent if its transport does not need it.
			s.log.Error("no uplink: the VM has no network", "interface", p.Interface, "err", err)
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	if p.MTU > 0 {
		if err := netlink.LinkSetMTU(link, p.MTU); err != nil {
			return fmt.Errorf("%s mtu %d: %w", p.Interface, p.MTU, err)
		}
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.Address.Addr().AsSlice(), Mask: net.CIDRMask(p.Address.Bits(), p.Address.Addr().BitLen())}}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("%s address %s: %w", p.Interface, p.Address, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s up: %w", p.Interface, err)
	}
	route := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: p.Gateway.AsSlice()}
	if err := netlink.RouteReplace(route); err != nil {
		return fmt.Errorf("default route via %s: %w", p.Gateway, err)
	}
	s.log.Info("network up", "interface", p.Interface, "address", p.Address, "gateway", p.Gateway, "dns", p.DNS, "hostname", host)
	return nil
}

func (s *system) dataDisk(cfg instance.Config) error {
	m, ok := DataMount(cfg)
	if !ok {
		s.log.Warn("no data disk: images and containers are lost at every stop")
		return os.MkdirAll(DataDir, 0o700)
	}
	if err := waitFor(m.Source, deviceWait); err != nil {
		return fmt.Errorf("data disk: %w", err)
	}
	head := make([]byte, 2048)
	f, err := os.Open(m.Source)
	if err != nil {
		return fmt.Errorf("data disk: %w", err)
	}
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil {
		return fmt.Errorf("data disk %s: %w", m.Source, err)
	}
	if !HasExtSuperblock(head) {
		s.log.Warn("data disk has no filesystem: formatting it with busybox mke2fs (no journal)", "device", m.Source)
		if err := s.reaper.run(s.console, "/bin/mke2fs", "-L", "berth-data", m.Source); err != nil {
			return fmt.Errorf("format data disk: %w", err)
		}
	}
	if err := s.mount(m); err != nil {
		return fmt.Errorf("data disk: %w", err)
	}
	if err := os.Chmod(DataDir, 0o700); err != nil {
		return err
	}
	s.log.Info("data disk mounted", "device", m.Source, "at", DataDir)
	if err := growFS(m.Source, DataDir); err != nil {
		s.log.Warn("data disk not grown to the device's size", "err", err)
	}
	return nil
}

// ext4IOCResizeFS is EXT4_IOC_RESIZE_FS, _IOW('f', 16, __u64): grow a mounted ext4 to a block count.
const ext4IOCResizeFS = 0x40086610

// growFS grows the filesystem mounted at dir to fill dev (online, no resize2fs needed), so that a data disk
// the host enlarged is used in full. A filesystem that already fills the device is left alone.
func growFS(dev, dir string) error {
	f, err := os.Open(dev)
	if err != nil {
		return err
	}
	var size uint64
	err = ioctlPtr(f.Fd(), unix.BLKGETSIZE64, unsafe.Pointer(&size))
	f.Close()
	if err != nil {
		return fmt.Errorf("size of %s: %w", dev, err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	blocks, ok := GrowBlocks(size, uint64(st.Bsize), st.Blocks)
	if !ok {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := ioctlPtr(d.Fd(), ext4IOCResizeFS, unsafe.Pointer(&blocks)); err != nil {
		return fmt.Errorf("resize %s to %d blocks: %w", dir, blocks, err)
	}
	return nil
}

func ioctlPtr(fd uintptr, req uint, arg unsafe.Pointer) error {
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, uintptr(req), uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}

// shares mounts the host shares; one that fails is logged and skipped.
func (s *system) shares(cfg instance.Config) {
	ms, err := ShareMounts(cfg.Shares)
	if err != nil {
		s.log.Error("shares", "err", err)
		return
	}
	for _, m := range ms {
		if err := s.mount(m); err != nil {
			s.log.Error("share not mounted", "tag", m.Source, "err", err)
			continue
		}
		s.log.Info("share mounted", "tag", m.Source, "at", m.Target, "type", m.FSType)
	}
}

// superviseEngine runs the engine until ctx ends, restarting it with backoff when it exits.
func (s *system) superviseEngine(ctx context.Context, argv []string) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		s.log.Error("engine: open /dev/null", "err", err)
		return
	}
	defer devnull.Close()
	backoff := 200 * time.Millisecond
	for {
		started := time.Now()
		pid, exited, err := s.reaper.start(argv, &os.ProcAttr{Dir: "/", Files: []*os.File{devnull, s.console, s.console}})
		if err != nil {
			s.log.Error("engine did not start", "err", err)
		} else {
			s.log.Info("engine started", "pid", pid)
			select {
			case ws := <-exited:
				s.log.Error("engine exited; restarting it (containers keep running)", "status", describe(ws), "after", time.Since(started).Round(time.Millisecond))
			case <-ctx.Done():
				s.stopEngine(pid, exited)
				return
			}
		}
		if time.Since(started) > 30*time.Second {
			backoff = 200 * time.Millisecond
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (s *system) stopEngine(pid int, exited <-chan unix.WaitStatus) {
	_ = unix.Kill(pid, unix.SIGTERM)
	select {
	case ws := <-exited:
		s.log.Info("engine stopped", "status", describe(ws))
		return
	case <-time.After(engineGrace):
	}
	s.log.Warn("engine did not stop in time; killing it")
	_ = unix.Kill(pid, unix.SIGKILL)
	<-exited
}

// controlPortPath finds the virtio-serial port named ControlPort.
func controlPortPath() (string, bool) {
	names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
	for _, n := range names {
		if b, err := os.ReadFile(n); err == nil && strings.TrimSpace(string(b)) == ControlPort {
			return "/dev/" + filepath.Base(filepath.Dir(n)), true
		}
	}
	return "", false
}

// openControl opens the host's control port (the virtio-serial port named ControlPort), waiting up to
// deviceWait for it to appear when the machine has a virtio console device; nil without one.
func (s *system) openControl() *os.File {
	if bound, _ := filepath.Glob("/sys/bus/virtio/drivers/virtio_console/virtio*"); len(bound) == 0 {
		s.log.Info("no control port; stop the VM with a signal to PID 1 (busybox poweroff)")
		return nil
	}
	var dev string
	deadline := time.Now().Add(deviceWait)
	for {
		var ok bool
		if dev, ok = controlPortPath(); ok {
			break
		}
		if time.Now().After(deadline) {
			s.log.Info("no control port; stop the VM with a signal to PID 1 (busybox poweroff)")
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := waitFor(dev, deviceWait); err != nil {
		s.log.Warn("control port", "err", err)
		return nil
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		s.log.Warn("control port", "err", err)
		return nil
	}
	s.log.Info("control port open", "device", dev)
	return f
}

// control serves the host's control port f until ctx ends: "poweroff" ends the machine, "time NS" sets
// the clock.
func (s *system) control(ctx context.Context, f *os.File, poweroff chan<- string) {
	defer f.Close()
	for ctx.Err() == nil {
		// Reads return EOF while the host side is not connected.
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			cmd, err := ParseCommand(sc.Text())
			if err != nil {
				s.log.Warn("control port", "err", err)
				continue
			}
			switch cmd.Op {
			case "poweroff":
				select {
				case poweroff <- "poweroff on the control port":
				default:
				}
			case "time":
				tv := unix.NsecToTimeval(cmd.UnixNano)
				if err := unix.Settimeofday(&tv); err != nil {
					s.log.Warn("set clock", "err", err)
				} else {
					s.log.Info("clock set from the host", "time", time.Now().UTC().Format(time.RFC3339Nano))
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// shutdown ends every process, flushes and unmounts the filesystems and ends the machine.
func (s *system) shutdown() error {
	if s.reaper != nil {
		s.killAll(unix.SIGTERM, processGrace)
		s.killAll(unix.SIGKILL, 2*time.Second)
	}
	unix.Sync()
	s.mu.Lock()
	order := UnmountOrder(s.mounted)
	s.mu.Unlock()
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		// Containers' overlays, shm and netns mounts below the data disk go first.
		order = append(Submounts(mi, order), order...)
	}
	for _, t := range order {
		if err := unix.Unmount(t, 0); err != nil {
			s.log.Warn("unmount; detaching it", "target", t, "err", err)
			_ = unix.Unmount(t, unix.MNT_DETACH)
		}
	}
	unix.Sync()
	s.log.Info("powering off")
	// reboot=t on the kernel command line and QEMU's -no-reboot make a restart end the VM; power-off
	// needs ACPI or PSCI support the machine may not have.
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	return fmt.Errorf("reboot: %w", err)
}

// killAll signals every process but PID 1 and waits up to d for all of them to be gone; after SIGTERM it
// stops waiting early when only processes remain that SIGTERM cannot end (containers' first processes
// without a handler).
func (s *system) killAll(sig unix.Signal, d time.Duration) {
	if err := unix.Kill(-1, sig); errors.Is(err, unix.ESRCH) {
		return
	}
	deadline := time.Now().Add(d)
	for i := 0; s.reaper.children() && time.Now().Before(deadline); i++ {
		if sig == unix.SIGTERM && i%5 == 4 && onlyDeafLeft() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// onlyDeafLeft reports whether every process but PID 1 is deaf to SIGTERM (or a kernel thread or zombie).
func onlyDeafLeft() bool {
	ds, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range ds {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue // gone
		}
		if st := ParseProcStatus(b); !st.Ignore && !st.DeafToTerm {
			return false
		}
	}
	return true
}
