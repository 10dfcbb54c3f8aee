package qemu

import (
	"errors"
	"strings"
	"testing"
)

func testVM(arch, accel string) VM {
	return VM{
		Name: "default", Arch: arch, Accel: accel, TSCkHz: 2596120, CPUs: 2, MemoryMiB: 2048,
		Kernel: "/img/vmlinux", Initrd: "/i/initrd.img", Append: "console=ttyS0 reboot=t panic=-1 quiet",
		Disk: "/i/disk.raw", DiskFormat: "raw", SSHPort: 40022, GuestSSHPort: 22,
		Shares: []Share{{Tag: "share0", HostPath: "/home/me"}, {Tag: "share1", HostPath: "/srv/a,b", ReadOnly: true}},
		QMP:    "/i/qmp.sock", Control: "/i/ctl.sock", Serial: "/i/agent.log", ControlName: "berth.ctl",
	}
}

const commonTail = ` -nodefaults -no-user-config -nographic -no-reboot -kernel /img/vmlinux -initrd /i/initrd.img -append APPEND` +
	` -chardev file,id=console,path=/i/agent.log -serial chardev:console` +
	` -netdev user,id=net0,hostfwd=tcp:127.0.0.1:40022-:22 -device virtio-net-device,netdev=net0` +
	` -device virtio-rng-device` +
	` -drive if=none,id=data,file=/i/disk.raw,format=raw,cache=writeback,discard=unmap -device virtio-blk-device,drive=data` +
	` -fsdev local,id=fs0,path=/home/me,security_model=none,multidevs=remap -device virtio-9p-device,fsdev=fs0,mount_tag=share0` +
	` -fsdev local,id=fs1,path=/srv/a,,b,security_model=none,multidevs=remap,readonly=on -device virtio-9p-device,fsdev=fs1,mount_tag=share1` +
	` -chardev socket,id=ctl,path=/i/ctl.sock,server=on,wait=off -device virtio-serial-device -device virtserialport,chardev=ctl,name=berth.ctl` +
	` -qmp unix:/i/qmp.sock,server=on,wait=off`

// TestCmdlineGolden pins QEMU's argv for every architecture × accelerator.
func TestCmdlineGolden(t *testing.T) {
	const x86 = "console=ttyS0 reboot=t panic=-1 quiet"
	for _, tc := range []struct {
		arch, accel, head, append string
	}{
		{"amd64", AccelTCG, "-name berth-default -M microvm,x-option-roms=off,isa-serial=on -accel tcg,thread=multi -smp 2 -m 2048", x86 + " tsc_early_khz=2596120"},
		{"amd64", AccelKVM, "-name berth-default -M microvm,x-option-roms=off,isa-serial=on -accel kvm -cpu host -smp 2 -m 2048", x86},
		{"amd64", AccelHVF, "-name berth-default -M microvm,x-option-roms=off,isa-serial=on -accel hvf -cpu host -smp 2 -m 2048", x86},
		{"arm64", AccelTCG, "-name berth-default -M virt -accel tcg,thread=multi -cpu max -smp 2 -m 2048", "console=ttyAMA0 panic=-1"},
		{"arm64", AccelKVM, "-name berth-default -M virt -accel kvm -cpu host -smp 2 -m 2048", "console=ttyAMA0 panic=-1"},
		{"arm64", AccelHVF, "-name berth-default -M virt -accel hvf -cpu host -smp 2 -m 2048", "console=ttyAMA0 panic=-1"},
	} {
		vm := testVM(tc.arch, tc.accel)
		if tc.arch == "arm64" {
			vm.Kernel, vm.Append = "/img/vmlinux", "console=ttyAMA0 panic=-1"
		}
		argv, err := Cmdline(vm)
		if err != nil {
			t.Fatalf("%s/%s: %v", tc.arch, tc.accel, err)
		}
		// The command line is one argument; compare it apart.
		i := indexOf(argv, "-append")
		if i < 0 || argv[i+1] != tc.append {
			t.Errorf("%s/%s: -append %q, want %q", tc.arch, tc.accel, argv[i+1], tc.append)
		}
		argv[i+1] = "APPEND"
		if got, want := strings.Join(argv, " "), tc.head+commonTail; got != want {
			t.Errorf("%s/%s:\n got %s\nwant %s", tc.arch, tc.accel, got, want)
		}
	}
}

func indexOf(a []string, s string) int {
	for i, x := range a {
		if x == s {
			return i
		}
	}
	return -1
}

func TestCmdlineMinimalAndInvalid(t *testing.T) {
	vm := testVM("amd64", AccelTCG)
	vm.Disk, vm.Shares, vm.Control, vm.QMP, vm.TSCkHz = "", nil, "", "", 0
	argv, err := Cmdline(vm)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Join(argv, " ")
	for _, absent := range []string{"virtio-blk", "9p", "virtserialport", "-qmp", "tsc_early_khz"} {
		if strings.Contains(s, absent) {
			t.Errorf("%q in %s", absent, s)
		}
	}
	if !strings.Contains(s, "hostfwd=tcp:127.0.0.1:40022-:22") {
		t.Errorf("SSH forward not bound to 127.0.0.1: %s", s)
	}
	for name, mut := range map[string]func(*VM){
		"arch":     func(v *VM) { v.Arch = "riscv64" },
		"accel":    func(v *VM) { v.Accel = "whpx" },
		"no cpus":  func(v *VM) { v.CPUs = 0 },
		"no port":  func(v *VM) { v.SSHPort = 0 },
		"rel path": func(v *VM) { v.Shares = []Share{{Tag: "s", HostPath: "home"}} },
		"no tag":   func(v *VM) { v.Shares = []Share{{HostPath: "/home"}} },
	} {
		v := testVM("amd64", AccelTCG)
		mut(&v)
		if _, err := Cmdline(v); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A Windows host path is a valid export.
	v := testVM("amd64", AccelTCG)
	v.Shares = []Share{{Tag: "s", HostPath: `C:\Users\me`}}
	if _, err := Cmdline(v); err != nil {
		t.Errorf("windows share: %v", err)
	}
}

func TestBinary(t *testing.T) {
	if b, _ := Binary("amd64"); b != "qemu-system-x86_64" {
		t.Error(b)
	}
	if b, _ := Binary("arm64"); b != "qemu-system-aarch64" {
		t.Error(b)
	}
	if _, err := Binary("386"); !errors.Is(err, ErrInvalid) {
		t.Error(err)
	}
}

func TestChooseAccel(t *testing.T) {
	for _, tc := range []struct {
		goos, host, guest string
		kvm               bool
		want              string
	}{
		{"linux", "amd64", "amd64", true, AccelKVM},
		{"linux", "amd64", "amd64", false, AccelTCG},
		{"linux", "amd64", "arm64", true, AccelTCG},
		{"darwin", "arm64", "arm64", false, AccelHVF},
		{"darwin", "arm64", "amd64", false, AccelTCG},
		{"windows", "amd64", "amd64", false, AccelTCG},
	} {
		if got := ChooseAccel(tc.goos, tc.host, tc.guest, tc.kvm); got != tc.want {
			t.Errorf("%+v: %s", tc, got)
		}
	}
}

func TestParseCPUInfoKHz(t *testing.T) {
	in := "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu MHz\t\t: 2596.120\ncache size\t: 512 KB\n"
	if got := ParseCPUInfoKHz(in); got != 2596120 {
		t.Errorf("got %d", got)
	}
	if ParseCPUInfoKHz("processor: 0\n") != 0 || ParseCPUInfoKHz("cpu MHz: x\n") != 0 {
		t.Error("kHz from nothing")
	}
}
