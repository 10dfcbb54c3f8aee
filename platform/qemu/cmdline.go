package qemu

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Accelerators.
const (
	AccelKVM = "kvm"
	AccelHVF = "hvf"
	AccelTCG = "tcg"
)

// Share is a host directory exported to the guest over 9p.
type Share struct {
	// Tag is the 9p mount tag ("share0").
	Tag string
	// HostPath is the directory on the host; the guest mounts it at the same path.
	HostPath string
	// ReadOnly exports it read-only.
	ReadOnly bool
}

// VM is everything Cmdline needs to build QEMU's argv. Paths are host paths.
type VM struct {
	// Name of the instance (for -name).
	Name string
	// Arch is the guest (and host) GOARCH: amd64 or arm64.
	Arch string
	// Accel is AccelKVM, AccelHVF or AccelTCG.
	Accel string
	// TSCkHz is the host TSC frequency, passed as tsc_early_khz on amd64 under TCG (0: omitted).
	TSCkHz int
	// CPUs and MemoryMiB are the VM's resources.
	CPUs      int
	MemoryMiB int
	// Kernel and Initrd are the boot files; Append is the base command line (no secrets).
	Kernel, Initrd, Append string
	// Disk is the data disk image and DiskFormat its format (raw or qcow2); empty Disk: none.
	Disk, DiskFormat string
	// SSHPort is the host port on 127.0.0.1 forwarded to GuestSSHPort.
	SSHPort, GuestSSHPort int
	// Shares are the 9p exports.
	Shares []Share
	// QMP, Control and Serial are the QMP socket, the control port's socket and the console log.
	QMP, Control, Serial string
	// ControlName is the control port's virtio-serial name.
	ControlName string
}

// Binary is the QEMU system emulator for a guest architecture.
func Binary(arch string) (string, error) {
	switch arch {
	case "amd64":
		return "qemu-system-x86_64", nil
	case "arm64":
		return "qemu-system-aarch64", nil
	}
	return "", fmt.Errorf("%w: architecture %q", ErrInvalid, arch)
}

// Cmdline is QEMU's argv (without the binary) for vm: a pure function, so every machine type and
// accelerator is unit-tested on any host.
//
// amd64 boots `-M microvm` with the kernel's PVH entry (no firmware, no PCI, no option ROMs, an ISA
// serial console); arm64 boots `-M virt`. Every device is virtio-mmio: network (user mode, SSH forwarded
// from 127.0.0.1 only), the data disk, a random number source, the 9p shares and a virtio-serial control
// port. QMP listens on a unix socket. -no-reboot turns the guest's reboot (sysinit's way to power off)
// into QEMU's exit.
func Cmdline(vm VM) ([]string, error) {
	if vm.CPUs <= 0 || vm.MemoryMiB <= 0 || vm.Kernel == "" || vm.Initrd == "" || vm.SSHPort <= 0 || vm.GuestSSHPort <= 0 {
		return nil, fmt.Errorf("%w: %+v", ErrInvalid, vm)
	}
	appendLine := vm.Append
	var a []string
	add := func(s ...string) { a = append(a, s...) }
	add("-name", "berth-"+vm.Name)
	switch vm.Arch {
	case "amd64":
		// isa-serial for the console; the RTC stays on (rtc=off makes the kernel wait for it).
		add("-M", "microvm,x-option-roms=off,isa-serial=on")
		if vm.Accel == AccelTCG && vm.TSCkHz > 0 {
			// Without it the kernel calibrates the TSC under TCG and sometimes never finishes booting.
			appendLine += " tsc_early_khz=" + strconv.Itoa(vm.TSCkHz)
		}
	case "arm64":
		add("-M", "virt")
	default:
		return nil, fmt.Errorf("%w: architecture %q", ErrInvalid, vm.Arch)
	}
	switch vm.Accel {
	case AccelKVM, AccelHVF:
		add("-accel", vm.Accel, "-cpu", "host")
	case AccelTCG:
		if vm.Arch == "arm64" {
			add("-accel", "tcg,thread=multi", "-cpu", "max")
		} else {
			add("-accel", "tcg,thread=multi")
		}
	default:
		return nil, fmt.Errorf("%w: accelerator %q", ErrInvalid, vm.Accel)
	}
	add("-smp", strconv.Itoa(vm.CPUs), "-m", strconv.Itoa(vm.MemoryMiB))
	add("-nodefaults", "-no-user-config", "-nographic", "-no-reboot")
	add("-kernel", vm.Kernel, "-initrd", vm.Initrd, "-append", strings.TrimSpace(appendLine))
	add("-chardev", "file,id=console,path="+opt(vm.Serial), "-serial", "chardev:console")
	add("-netdev", fmt.Sprintf("user,id=net0,hostfwd=tcp:127.0.0.1:%d-:%d", vm.SSHPort, vm.GuestSSHPort),
		"-device", "virtio-net-device,netdev=net0")
	add("-device", "virtio-rng-device")
	if vm.Disk != "" {
		format := vm.DiskFormat
		if format == "" {
			format = "raw"
		}
		add("-drive", fmt.Sprintf("if=none,id=data,file=%s,format=%s,cache=writeback,discard=unmap", opt(vm.Disk), format),
			"-device", "virtio-blk-device,drive=data")
	}
	for i, s := range vm.Shares {
		if s.Tag == "" || !isAbs(s.HostPath) {
			return nil, fmt.Errorf("%w: share %+v", ErrInvalid, s)
		}
		ro := ""
		if s.ReadOnly {
			ro = ",readonly=on"
		}
		id := "fs" + strconv.Itoa(i)
		add("-fsdev", fmt.Sprintf("local,id=%s,path=%s,security_model=none,multidevs=remap%s", id, opt(s.HostPath), ro),
			"-device", fmt.Sprintf("virtio-9p-device,fsdev=%s,mount_tag=%s", id, s.Tag))
	}
	if vm.Control != "" {
		add("-chardev", "socket,id=ctl,path="+opt(vm.Control)+",server=on,wait=off",
			"-device", "virtio-serial-device",
			"-device", "virtserialport,chardev=ctl,name="+vm.ControlName)
	}
	if vm.QMP != "" {
		add("-qmp", "unix:"+opt(vm.QMP)+",server=on,wait=off")
	}
	return a, nil
}

// opt escapes a value for QEMU's comma-separated option syntax (a comma is doubled).
func opt(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// isAbs accepts absolute paths of the host's kind and Windows drive paths (Cmdline is tested on Linux).
func isAbs(p string) bool {
	return filepath.IsAbs(p) || strings.HasPrefix(p, "/") || (len(p) > 2 && p[1] == ':' && (p[2] == '\\' || p[2] == '/'))
}

// ChooseAccel picks the accelerator: KVM on a Linux host of the guest's architecture when /dev/kvm is
// usable, HVF on a macOS host of the guest's architecture, TCG otherwise.
func ChooseAccel(goos, hostArch, guestArch string, kvmUsable bool) string {
	if hostArch != guestArch {
		return AccelTCG
	}
	switch {
	case goos == "linux" && kvmUsable:
		return AccelKVM
	case goos == "darwin":
		return AccelHVF
	}
	return AccelTCG
}

// ParseCPUInfoKHz reads the TSC frequency from /proc/cpuinfo's first "cpu MHz" line (in kHz; 0 if none).
func ParseCPUInfoKHz(cpuinfo string) int {
	for _, l := range strings.Split(cpuinfo, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(k) != "cpu MHz" {
			continue
		}
		mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || mhz <= 0 {
			return 0
		}
		return int(mhz * 1000)
	}
	return 0
}
