package libct

import (
	"errors"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestValidateID(t *testing.T) {
	for _, id := range []string{"a", "abc-DEF_1.2+3", "0"} {
		if err := validateID(id); err != nil {
			t.Errorf("validateID(%q): %v", id, err)
		}
	}
	for _, id := range []string{"", ".", "..", "a/b", "../x", "a b", "ä", "a:b"} {
		if err := validateID(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("validateID(%q) = %v, want ErrInvalidID", id, err)
		}
	}
}

func TestCheckVersion(t *testing.T) {
	for _, v := range []string{"1.0.0", "1.0.2", "1.1.0", "1.2.1", "1.3.0", "1.0.0-rc5", "1.2.0-dev", "1.3.0-rc.1"} {
		if err := checkVersion(v); err != nil {
			t.Errorf("checkVersion(%q): %v", v, err)
		}
	}
	for _, v := range []string{"", "1.0", "0.9.0", "1.3.1", "1.4.0", "2.0.0", "x.y.z", "1.0.0.0"} {
		if err := checkVersion(v); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("checkVersion(%q) = %v, want ErrInvalidSpec", v, err)
		}
	}
}

func validSpec() *specs.Spec {
	return &specs.Spec{
		Version: "1.0.2",
		Root:    &specs.Root{Path: "rootfs"},
		Process: &specs.Process{Args: []string{"sh"}, Cwd: "/"},
		Linux:   &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.UTSNamespace}}},
	}
}

func TestValidateSpec(t *testing.T) {
	if err := validateSpec(validSpec()); err != nil {
		t.Fatalf("valid spec: %v", err)
	}
	bad := map[string]func(*specs.Spec){
		"no process":     func(s *specs.Spec) { s.Process = nil },
		"no root":        func(s *specs.Spec) { s.Root = nil },
		"empty root":     func(s *specs.Spec) { s.Root.Path = "" },
		"no args":        func(s *specs.Spec) { s.Process.Args = nil },
		"relative cwd":   func(s *specs.Spec) { s.Process.Cwd = "tmp" },
		"version":        func(s *specs.Spec) { s.Version = "2.0.0" },
		"no linux":       func(s *specs.Spec) { s.Linux = nil },
		"unknown cap":    func(s *specs.Spec) { s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: []string{"CAP_NOPE"}} },
		"unknown rlimit": func(s *specs.Spec) { s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOPE"}} },
		"soft above hard": func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 2, Hard: 1}}
		},
		"relative mount": func(s *specs.Spec) { s.Mounts = []specs.Mount{{Destination: "proc", Type: "proc"}} },
		"bad namespace": func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "nope"})
		},
		"namespace twice": func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "uts"})
		},
		"hostname no uts": func(s *specs.Spec) { s.Hostname = "h"; s.Linux.Namespaces = nil },
		"propagation":     func(s *specs.Spec) { s.Linux.RootfsPropagation = "sideways" },
		"personality":     func(s *specs.Spec) { s.Linux.Personality = &specs.LinuxPersonality{Domain: "PDP11"} },
		"ioprio class":    func(s *specs.Spec) { s.Process.IOPriority = &specs.LinuxIOPriority{Class: "IOPRIO_CLASS_X"} },
		"ioprio level": func(s *specs.Spec) {
			s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 8}
		},
	}
	for name, mutate := range bad {
		s := validSpec()
		mutate(s)
		if err := validateSpec(s); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%s: %v, want ErrInvalidSpec", name, err)
		}
	}
}

func TestCapabilities(t *testing.T) {
	if v, ok := capValue("CAP_SYS_ADMIN"); !ok || v != 21 {
		t.Errorf("CAP_SYS_ADMIN = %d, %v", v, ok)
	}
	if v, ok := capValue("checkpoint_restore"); !ok || v != 40 {
		t.Errorf("CHECKPOINT_RESTORE = %d, %v", v, ok)
	}
	// Docker's default set, as /proc/<pid>/status prints it.
	docker := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
		"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
		"CAP_KILL", "CAP_AUDIT_WRITE"}
	if m := capMask(docker); m != 0xa80425fb {
		t.Errorf("docker mask %#x, want 0xa80425fb", m)
	}
}

func TestWithDefaultDevices(t *testing.T) {
	deny := specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}
	res := &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{deny}}
	out := withDefaultDevices(res, []specs.LinuxDevice{{Path: "/dev/x", Type: "c", Major: 250, Minor: 1}, {Path: "/dev/p", Type: "p"}})
	if len(res.Devices) != 1 {
		t.Fatal("input resources modified")
	}
	if out.Devices[0] != deny {
		t.Errorf("spec rules must come first: %+v", out.Devices[0])
	}
	last := out.Devices[len(out.Devices)-1]
	if !last.Allow || last.Type != "c" || *last.Major != 250 || *last.Minor != 1 {
		t.Errorf("last rule %+v, want allow c 250:1", last)
	}
	var null bool
	for _, d := range out.Devices {
		if d.Allow && d.Type == "c" && d.Major != nil && *d.Major == 1 && d.Minor != nil && *d.Minor == 3 {
			null = true
		}
	}
	if !null {
		t.Error("/dev/null not allowed")
	}
	if withDefaultDevices(nil, nil).Devices == nil {
		t.Error("no rules without resources")
	}
}

func TestIOPrioAndPersonality(t *testing.T) {
	if v, err := ioprioValue(&specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 4}); err != nil || v != 2<<13|4 {
		t.Errorf("ioprio BE/4 = %#x, %v", v, err)
	}
	if v, err := personalityValue(&specs.LinuxPersonality{Domain: specs.PerLinux32}); err != nil || v != 8 {
		t.Errorf("LINUX32 = %d, %v", v, err)
	}
}
