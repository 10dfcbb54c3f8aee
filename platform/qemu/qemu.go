// Package qemu is the platform driver that runs berth's VM image under QEMU (DESIGN.md §6, §7): Linux hosts
// with KVM when /dev/kvm is usable, macOS with HVF, TCG everywhere else (Windows, nested or foreign
// architectures).
//
// The guest is vmimage's kernel and initramfs, with berth-agent as /init (guestagent/sysinit), plus a
// per-instance config cpio appended at every Start (vmimage/instance: the agent's host key, the authorized
// client key, the shares; nothing secret on the kernel command line). amd64 boots `-M microvm` through the
// kernel's PVH entry (with tsc_early_khz under TCG), arm64 boots `-M virt`; QEMU's argv is built by the pure
// function Cmdline. The TSC frequency comes from /sys or /proc/cpuinfo, so only Linux hosts pass
// tsc_early_khz; an amd64 guest under TCG on macOS or Windows boots without it (slower to calibrate, and
// measured here to hang in 2 of 7 boots: Start then times out with the console's tail).
//
// Networking is QEMU's user mode (no privileges, no host interfaces): the agent's SSH transport inside the
// VM is forwarded from a random port on 127.0.0.1, and the VM reaches the host's loopback through its
// gateway 10.0.2.2 (a registry on the host is 10.0.2.2:PORT inside). Start returns once an SSH handshake
// on that port shows the pinned host key. vsock is not used: vhost-vsock needs a host kernel module and
// privileges that user-mode QEMU lacks.
//
// Files: the user's home directory (or the directories in Options.Shares; nothing else) is exported with 9p
// and mounted in the guest at the same path, so `-v $HOME/x:/data` binds the host's directory.
//
// Data: disk.raw in the instance directory, a sparse raw image (default 20 GiB) formatted ext4 by the host
// at Create when mkfs.ext4 (e2fsprogs) is available — always on Linux hosts; on macOS `brew install
// e2fsprogs`; without it the guest formats it with busybox mke2fs (no journal). A larger
// Options.DiskSizeGiB at a later Start grows the image, and the guest grows the mounted ext4 to match
// (online resize); disks never shrink.
//
// Control: QMP on a unix socket in the instance directory answers Status (query-status) and is the
// fallback of Stop (quit); a clean Stop writes "poweroff" to a virtio-serial control port, on which the
// guest's init stops the engine and containers, syncs and unmounts before the VM ends.
//
// State in the instance directory: disk.raw, initrd.img (base initramfs + instance config; mode 0600, it
// holds the host key), agent.log (the serial console), qemu.log (QEMU's own messages), qemu.pid, qemu.json
// (the forwarded port), qmp.sock, ctl.sock.
package qemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/berth-dev/berth/platform"
)

// Name is the driver's name.
const Name = "qemu"

// ImageEnv names the VM image directory when Options.ImageDir is empty.
const ImageEnv = "BERTH_VMIMAGE"

// AccelEnv forces an accelerator when Options.Accel is empty ("tcg", "kvm", "hvf").
const AccelEnv = "BERTH_QEMU_ACCEL"

// DebugEnv, when set, reports every failed readiness probe of Start through Options.Progress.
const DebugEnv = "BERTH_QEMU_DEBUG"

// Fixed guest-side values; guestagent/sysinit defines the same ones (a test checks; the host side may not
// import guest packages).
const (
	guestEngineSocket = "/run/berth/docker.sock"
	guestSSHPort      = 22
	controlPortName   = "berth.ctl"
	guestDataDisk     = "/dev/vda"
)

// Defaults.
const (
	DefaultCPUs        = 2
	DefaultMemoryMiB   = 2048
	DefaultDiskSizeGiB = 20
)

// Errors of this package.
var (
	// ErrInvalid: a VM or option that cannot be expressed.
	ErrInvalid = errors.New("qemu: invalid configuration")
	// ErrNoImage: no VM image directory was found.
	ErrNoImage = errors.New("qemu: VM image not found")
)

// Options configures the driver.
type Options struct {
	// ImageDir is the VM image (the output of `berth-vmimage build`); empty means $BERTH_VMIMAGE, then
	// where the installers and `make vmimage` put it relative to the executable: ../share/berth/vm/ARCH
	// (deb/rpm), vm/ARCH (Windows, bin/ of a build), ../libexec/vm/ARCH (Homebrew).
	ImageDir string
	// QEMU is the emulator binary; empty means qemu-system-x86_64 or qemu-system-aarch64 from PATH.
	QEMU string
	// Arch is the guest architecture (GOARCH); empty means the host's.
	Arch string
	// Accel forces an accelerator (AccelKVM, AccelHVF, AccelTCG); empty means $BERTH_QEMU_ACCEL, then
	// ChooseAccel, falling back to TCG when QEMU exits at once with the chosen one.
	Accel string
	// Shares are the host directories shared into the VM at the same path; nil means the user's home
	// directory.
	Shares []string
	// DiskSizeGiB is the data disk's size at Create (0 means DefaultDiskSizeGiB); a larger value at Start
	// grows the disk.
	DiskSizeGiB int
	// Debug runs the agent with --debug.
	Debug bool
	// Progress, if set, receives one line per step of Start ("booting…", "waiting for the agent…").
	Progress func(msg string)
}

// Driver runs one instance's VM. Create it with New.
type Driver struct {
	inst platform.Instance
	opts Options
	p    paths
}

var (
	_ platform.Driver      = (*Driver)(nil)
	_ platform.Preflighter = (*Driver)(nil)
	_ platform.AgentLogger = (*Driver)(nil)
)

// New returns the driver for inst.
func New(inst platform.Instance, opts Options) *Driver {
	if opts.Arch == "" {
		opts.Arch = runtime.GOARCH
	}
	return &Driver{inst: inst, opts: opts, p: pathsOf(inst.Dir)}
}

// Name returns "qemu".
func (d *Driver) Name() string { return Name }

// EngineSocket is the engine's socket inside the VM.
func (d *Driver) EngineSocket() string { return guestEngineSocket }

// AgentLog is the VM's serial console log (kernel, init and engine output).
func (d *Driver) AgentLog() string { return d.p.serial }

// paths are the driver's files in the instance directory.
type paths struct {
	dir, disk, initrd, serial, qemuLog, pid, state, qmp, control string
}

func pathsOf(dir string) paths {
	sock := socketDir(dir)
	return paths{
		dir:     dir,
		disk:    filepath.Join(dir, "disk.raw"),
		initrd:  filepath.Join(dir, "initrd.img"),
		serial:  filepath.Join(dir, "agent.log"),
		qemuLog: filepath.Join(dir, "qemu.log"),
		pid:     filepath.Join(dir, "qemu.pid"),
		state:   filepath.Join(dir, "qemu.json"),
		qmp:     filepath.Join(sock, "qmp.sock"),
		control: filepath.Join(sock, "ctl.sock"),
	}
}

// maxSocketDir keeps socket paths under the smallest sun_path (104 bytes on macOS).
const maxSocketDir = 90

// socketDir is dir, or for a directory too long for unix socket paths a private one in the temp dir.
func socketDir(dir string) string {
	if len(dir) <= maxSocketDir {
		return dir
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("berth-qemu-%08x", fnv32(dir)))
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// state is what Start records for Status, Dial and Stop (qemu.json).
type state struct {
	// SSHPort is the host port forwarded to the agent's SSH server.
	SSHPort int `json:"sshPort"`
	// Accel and Arch are what the VM runs with.
	Accel string `json:"accel"`
	Arch  string `json:"arch"`
}

func (d *Driver) readState() (state, error) {
	var st state
	b, err := os.ReadFile(d.p.state)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil || st.SSHPort <= 0 {
		return st, fmt.Errorf("%w: %s: %v", ErrInvalid, d.p.state, err)
	}
	return st, nil
}

func (d *Driver) progress(format string, args ...any) {
	if d.opts.Progress != nil {
		d.opts.Progress(fmt.Sprintf(format, args...))
	}
}

// imageDir resolves the VM image directory.
func imageDir(explicit, env, exe, arch string, exists func(string) bool) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if env != "" {
		return env, nil
	}
	var cands []string
	if exe != "" {
		// Where the installers put it (deb/rpm, Windows, Homebrew) and where
		// `make vmimage` builds it next to bin/berth.
		bin := filepath.Dir(exe)
		cands = append(cands,
			filepath.Join(bin, "..", "share", "berth", "vm", arch),
			filepath.Join(bin, "vm", arch),
			filepath.Join(bin, "..", "libexec", "vm", arch))
	}
	for _, c := range cands {
		if exists(filepath.Join(c, "manifest.json")) {
			return c, nil
		}
	}
	return "", fmt.Errorf("%w for %s (set %s to the output of `berth-vmimage build --arch %s --out DIR`; tried %v)",
		ErrNoImage, arch, ImageEnv, arch, cands)
}

// shares maps the configured directories to 9p exports.
func shareList(dirs []string) []Share {
	var ss []Share
	for i, d := range dirs {
		ss = append(ss, Share{Tag: fmt.Sprintf("share%d", i), HostPath: d})
	}
	return ss
}
