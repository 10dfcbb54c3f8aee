// Package sysinit is berth-agent's PID-1 mode inside berth's VM (DESIGN.md §6): the kernel starts the agent
// as /init from the initramfs, and sysinit turns the bare kernel into a machine the engine can run on.
//
// Boot, in order:
//
//  1. leave the initial rootfs: bind "/" onto itself and chroot into the bind mount, so that containers can
//     pivot_root (pivot_root refuses a root that is the initial ramfs, which has no parent mount);
//  2. mount /proc, /sys, /dev (devtmpfs), /dev/pts, /dev/shm, /run, /tmp and /sys/fs/cgroup (cgroup v2, every
//     available controller enabled for child cgroups; sysinit and the engine stay in the root cgroup, the only
//     one with processes that may still delegate controllers, and containers go below it);
//  3. read the per-instance configuration the host appended as a second cpio (vmimage/instance: keys, shares,
//     network; no secret on the kernel command line);
//  4. load the boot stage's kernel modules, /lib/modules/berth.load, in order (finit_module; the image
//     stores them uncompressed, dependencies first): virtio, the uplink, the data disk. Then, in the
//     background while steps 5, 6 and 8 go on: the network stage (berth-network.load: bridge, nftables),
//     NetworkDone; the background stage (berth-background.load: control port, 9p/virtiofs, overlayfs)
//     and the host shares (step 7), BootDone; the late stage (berth-late.load: virtio-pci, vsock, rng…). The engine waits for NetworkDone before it sets up
//     container networking and for BootDone before it opens its containers. Under TCG a module takes
//     4–150 ms to load, ~650 ms for all; the stages take ~400 ms of it off the way to a ready agent;
//  5. hostname, loopback and the uplink (static: QEMU user-net's 10.0.2.15/24 via 10.0.2.2, DNS 10.0.2.3
//     unless the config says otherwise), /etc/resolv.conf and /etc/hosts;
//  6. the data disk (ext4) at /var/lib/berth, holding images and containers across restarts. The host
//     formats it (mkfs.ext4 on a raw image, see platform/qemu); a disk without a filesystem is formatted here
//     with busybox mke2fs as a fallback (ext2 features, mounted by the ext4 driver, no journal: a host without
//     e2fsprogs gets a working but less crash-safe disk); a filesystem smaller than its device (the host grew
//     the disk image) is grown online (EXT4_IOC_RESIZE_FS);
//  7. the host shares (9p or virtiofs) at their guest paths, normally the same path as on the host (in the
//     background, see 4);
//  8. the engine (`/init serve …`) as a supervised child process, restarted with backoff when it exits
//     unexpectedly; containers keep running under their shims meanwhile and the new engine finds them again.
//     On first boot the engine preloads the demo image (/etc/berth/demo-image.tar) before it answers.
//
// PID 1 reaps every orphan (wait4(-1)); it never lets a library call Wait on a child of its own, so the one
// reaper loop owns every exit status (see reaper).
//
// Shutdown starts on SIGTERM, SIGINT (also Ctrl-Alt-Del), SIGPWR, SIGUSR1 or SIGUSR2 (busybox
// halt/poweroff/reboot send these to PID 1) or on "poweroff" written to the control port, a virtio-serial port named ControlPort that only the
// host's VMM process exposes (a unix socket in the instance directory on the host). Order: SIGTERM to the
// engine and a wait, SIGTERM then (after up to 5 s) SIGKILL to every remaining process (containers), sync,
// unmount what lies below the data disk and shares (containers' overlays), then the shares and the data disk
// in reverse order, then reboot(2) RESTART, which with QEMU's -no-reboot ends the VM. SIGHUP and SIGQUIT are
// ignored (Go's default would end PID 1, which panics the kernel).
//
// Clock: at boot the kernel sets the clock from the VM's RTC, which QEMU keeps at host time (to the second).
// The host writes "time <unix-nanoseconds>" to the control port and sysinit sets the clock (settimeofday):
// platform/qemu does it once the agent is up, and its SyncClock is there for after a resume or a long pause
// of the VMM (the driver has no suspend of its own yet).
//
// Everything but the constants below is Linux-only; the planning functions are pure and unit-tested, the
// syscalls are thin.
package sysinit

// Fixed locations inside the VM, shared with the host side (platform/qemu).
const (
	// EngineSocket is the engine's unix socket inside the VM: the target of the host's
	// direct-streamlocal channels.
	EngineSocket = "/run/berth/docker.sock"
	// DataDir is where the data disk is mounted (images, containers).
	DataDir = "/var/lib/berth"
	// RunRoot is the engine's runtime state directory (tmpfs).
	RunRoot = "/run/berth"
	// SSHPort is the TCP port of the agent's SSH transport inside the VM.
	SSHPort = 22
	// ControlPort is the name of the virtio-serial port on which the host sends control lines
	// ("poweroff", "time <unix-nanoseconds>").
	ControlPort = "berth.ctl"
	// DemoImage is the docker-save tarball loaded on first boot.
	DemoImage = "/etc/berth/demo-image.tar"
	// ModuleList is the image's boot-stage module load list: one absolute .ko path per line,
	// dependencies first, loaded before anything else of the boot (images from before the stages list
	// every module there).
	ModuleList = "/lib/modules/berth.load"
	// NetworkModuleList and BackgroundModuleList are the later stages' lists (same format; a module may
	// depend on an earlier stage's), loaded one after the other in the background.
	NetworkModuleList    = "/lib/modules/berth-network.load"
	BackgroundModuleList = "/lib/modules/berth-background.load"
	// LateModuleList is loaded after BootDone: modules nothing waits for.
	LateModuleList = "/lib/modules/berth-late.load"
	// NetworkDone is created once the network stage is loaded; the engine waits for it (EngineArgv's
	// --wait-network, WaitFile) before it sets up container networking (bridge, nftables).
	NetworkDone = "/run/berth-network.done"
	// BootDone is created once the background stage is loaded and the shares are mounted; the engine
	// waits for it (--wait-boot) before it opens its containers, the first thing that needs them
	// (overlayfs, binds from the shares).
	BootDone = "/run/berth-boot.done"
)
