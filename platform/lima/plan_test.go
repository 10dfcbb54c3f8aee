package lima

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/berth-dev/berth/hostshim/transport"
	"github.com/berth-dev/berth/platform"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// golden compares got with testdata/name, rewriting it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run with -update after checking):\n%s", name, got)
	}
}

func TestYAMLGolden(t *testing.T) {
	for _, tc := range []struct {
		golden     string
		goos, arch string
		opts       Options
		cpus, mem  int
	}{
		{
			golden: "lima-vz.yaml", goos: "darwin", arch: "arm64",
			opts: Options{Rosetta: true, HomeDir: "/Users/ann", Shares: []string{"/Volumes/work", "/Users/ann"}},
			cpus: 4, mem: 4096,
		},
		{
			golden: "lima-qemu.yaml", goos: "linux", arch: "amd64",
			opts: Options{HomeDir: "/home/ann", DiskGiB: 40, AgentArgs: []string{"--debug"}},
		},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			o := tc.opts.withDefaults(tc.goos, tc.arch)
			if err := o.validate(); err != nil {
				t.Fatal(err)
			}
			y := BuildYAML(o, tc.cpus, tc.mem, "/home/ann/.berth/default/lima-share")
			b, err := MarshalYAML(y)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.golden, b)
			// It decodes strictly into the same types, and Lima would not expand anything in it.
			var back LimaYAML
			dec := yaml.NewDecoder(bytes.NewReader(b))
			dec.KnownFields(true)
			if err := dec.Decode(&back); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(&back, y) {
				t.Errorf("round trip differs:\n got %+v\nwant %+v", back, *y)
			}
			if bytes.Contains(b, []byte("{{")) {
				t.Error("lima.yaml contains a Go-template action Lima would expand")
			}
		})
	}
}

func TestYAMLChoices(t *testing.T) {
	vz := Options{HomeDir: "/Users/ann"}.withDefaults("darwin", "arm64")
	y := BuildYAML(vz, 0, 0, "/s")
	if y.VMType != VMTypeVZ || y.MountType != MountTypeVirtiofs || y.Arch != ArchAArch64 {
		t.Errorf("darwin/arm64 defaults: %s %s %s", y.VMType, y.MountType, y.Arch)
	}
	if y.CPUs != nil || y.Memory != nil || y.VMOpts != nil {
		t.Errorf("zero cpus/memory and no Rosetta must leave Lima's defaults: %+v", y)
	}
	if len(y.Images) != 1 || !strings.Contains(y.Images[0].Location, "arm64") {
		t.Errorf("images for aarch64: %+v", y.Images)
	}
	q := Options{HomeDir: "/home/ann"}.withDefaults("linux", "amd64")
	y = BuildYAML(q, 2, 1024, "/s")
	if y.VMType != VMTypeQEMU || y.MountType != MountType9P || *y.CPUs != 2 || *y.Memory != "1024MiB" {
		t.Errorf("linux/amd64: %s %s %v %v", y.VMType, y.MountType, *y.CPUs, *y.Memory)
	}
	home, share := y.Mounts[0], y.Mounts[len(y.Mounts)-1]
	if home.Location != "/home/ann" || *home.MountPoint != "/home/ann" || !*home.Writable {
		t.Errorf("home mount: %+v", home)
	}
	if share.Location != "/s" || *share.MountPoint != ShareMountPoint || *share.Writable {
		t.Errorf("share mount: %+v", share)
	}
	pf := y.PortForwards
	if len(pf) != 1 || !pf[0].Ignore || pf[0].GuestIP != "0.0.0.0" || *pf[0].GuestIPMustBeZero || pf[0].Proto != "any" {
		t.Errorf("port forwards must ignore everything: %+v", pf)
	}
	if *y.Containerd.System || *y.Containerd.User {
		t.Error("Lima's containerd must be off")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name       string
		goos, arch string
		opts       Options
		ok         bool
	}{
		{"vz defaults", "darwin", "arm64", Options{HomeDir: "/h"}, true},
		{"rosetta vz", "darwin", "arm64", Options{HomeDir: "/h", Rosetta: true}, true},
		{"rosetta qemu", "darwin", "arm64", Options{HomeDir: "/h", Rosetta: true, VMType: VMTypeQEMU}, false},
		{"rosetta x86 guest", "darwin", "amd64", Options{HomeDir: "/h", Rosetta: true}, false},
		{"unknown vm type", "darwin", "arm64", Options{HomeDir: "/h", VMType: "wsl2"}, false},
		{"unknown arch", "linux", "riscv64", Options{HomeDir: "/h"}, false},
		{"relative home", "linux", "amd64", Options{HomeDir: "h"}, false},
		{"relative share", "linux", "amd64", Options{HomeDir: "/h", Shares: []string{"x"}}, false},
		{"no image for arch", "linux", "amd64", Options{HomeDir: "/h", Images: []Image{{Location: "a.img", Arch: ArchAArch64}}}, false},
		{"negative disk", "linux", "amd64", Options{HomeDir: "/h", DiskGiB: -1}, false},
		{"agent arg ok", "linux", "amd64", Options{HomeDir: "/h", AgentArgs: []string{"--debug", "--bridge=true"}}, true},
		{"agent arg with space", "linux", "amd64", Options{HomeDir: "/h", AgentArgs: []string{"--x y"}}, false},
		{"agent arg with specifier", "linux", "amd64", Options{HomeDir: "/h", AgentArgs: []string{"--x=%h"}}, false},
		{"agent arg with dollar", "linux", "amd64", Options{HomeDir: "/h", AgentArgs: []string{"$HOME"}}, false},
	} {
		err := tc.opts.withDefaults(tc.goos, tc.arch).validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s: validate = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: %v does not wrap ErrInvalidOptions", tc.name, err)
		}
	}
}

func TestProvisionScript(t *testing.T) {
	s := ProvisionScript([]string{"--debug"})
	golden(t, "provision.sh", []byte(s))
	if strings.Contains(s, "{{") || strings.Contains(s, "<%") {
		t.Error("script contains template actions")
	}
	if !strings.Contains(s, "berth-agent serve --socket "+EngineSocket+" --root /var/lib/berth --run-root /run/berth --bridge --debug\n") {
		t.Error("systemd unit does not run the agent with the expected arguments")
	}
	if strings.Contains(ProvisionScript(nil), " --debug") {
		t.Error("arguments leak into a script rendered without them")
	}
	// The script (and the helper it writes) must at least parse as POSIX sh.
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to syntax-check the script")
	}
	for _, script := range []string{s, readinessProbe} {
		cmd := exec.Command(sh, "-n")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sh -n: %v: %s", err, out)
		}
	}
}

func TestArgv(t *testing.T) {
	for _, tc := range []struct {
		got, want []string
	}{
		{createArgv("berth-default", "/h/.berth/default/lima.yaml"), []string{"create", "--tty=false", "--name=berth-default", "/h/.berth/default/lima.yaml"}},
		{startArgv("berth-default", 10*time.Minute), []string{"start", "--tty=false", "--timeout=10m0s", "berth-default"}},
		{stopArgv("berth-default", false), []string{"stop", "--tty=false", "berth-default"}},
		{stopArgv("berth-default", true), []string{"stop", "--tty=false", "--force", "berth-default"}},
		{deleteArgv("berth-default"), []string{"delete", "--tty=false", "--force", "berth-default"}},
		{listArgv(), []string{"list", "--tty=false", "--json"}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("argv %q, want %q", tc.got, tc.want)
		}
	}
	if InstanceName("default") != "berth-default" {
		t.Error(InstanceName("default"))
	}
}

func TestParseList(t *testing.T) {
	b, err := os.ReadFile("testdata/list.json")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ParseList(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Fatalf("%d entries, want 3", len(entries))
	}
	run := findEntry(entries, "berth-default")
	if run == nil || run.Status != LimaStatusRunning || run.SSHLocalPort != 51234 || run.SSHAddress != "127.0.0.1" ||
		run.HostAgentPID != 7001 || run.VMType != VMTypeVZ || run.Arch != ArchAArch64 || run.Memory != 4<<30 {
		t.Errorf("running entry: %+v", run)
	}
	if st := statusOf(run); st.State != platform.StateRunning || st.Endpoint != "tcp:127.0.0.1:51234" || st.PID != 7001 {
		t.Errorf("running status: %+v", st)
	}
	broken := findEntry(entries, "berth-old")
	st := statusOf(broken)
	if st.State != platform.StateDegraded || len(st.Notes) != 3 || !strings.Contains(st.Notes[0], "images") {
		t.Errorf("broken status: %+v", st)
	}
	if st := statusOf(findEntry(entries, "berth-stopped")); st.State != platform.StateStopped || st.Endpoint != "" || st.PID != 0 {
		t.Errorf("stopped status: %+v", st)
	}
	if findEntry(entries, "berth-none") != nil || statusOf(nil).State != platform.StateNotCreated {
		t.Error("absent instance")
	}

	// The same entries as a JSON array, and no instances at all.
	arr := "[" + strings.Join(strings.Split(strings.TrimSpace(string(b)), "\n"), ",") + "]"
	if e2, err := ParseList([]byte(arr)); err != nil || !reflect.DeepEqual(e2, entries) {
		t.Errorf("array form: %v, %+v", err, e2)
	}
	if e, err := ParseList([]byte("\n")); err != nil || e != nil {
		t.Errorf("empty output: %v, %v", e, err)
	}
	for _, bad := range []string{"{", "time=\"…\" level=warning msg=\"No instance found\"", `{"name":1}`} {
		if _, err := ParseList([]byte(bad)); !errors.Is(err, ErrListOutput) {
			t.Errorf("ParseList(%q) = %v, want ErrListOutput", bad, err)
		}
	}
}

func TestRunningWithoutPort(t *testing.T) {
	st := statusOf(&ListEntry{Name: "berth-x", Status: LimaStatusRunning})
	if st.State != platform.StateDegraded {
		t.Errorf("running without an SSH port: %+v", st)
	}
}

func TestCheckAgentELF(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("uses the test binary as a Linux ELF")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := checkAgentELF(f, runtime.GOARCH); err != nil {
		t.Errorf("own binary: %v", err)
	}
	other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
	if other != "" {
		if err := checkAgentELF(f, other); !errors.Is(err, ErrAgentBinary) {
			t.Errorf("binary for the wrong arch: %v", err)
		}
	}
	if err := checkAgentELF(strings.NewReader("#!/bin/sh\n"), "amd64"); !errors.Is(err, ErrAgentBinary) {
		t.Errorf("a script: %v", err)
	}
}

func TestPreflight(t *testing.T) {
	found := func(string) (string, error) { return "/opt/homebrew/bin/limactl", nil }
	missing := func(string) (string, error) { return "", exec.ErrNotFound }
	vz := Options{HomeDir: "/h"}.withDefaults("darwin", "arm64")
	if err := preflight("darwin", vz, found); err != nil {
		t.Errorf("darwin with limactl: %v", err)
	}
	for _, tc := range []struct {
		goos string
		o    Options
		look func(string) (string, error)
	}{
		{"darwin", vz, missing},
		{"windows", Options{VMType: VMTypeQEMU}, found},
		{"linux", vz, found},
	} {
		if err := preflight(tc.goos, tc.o, tc.look); !errors.Is(err, platform.ErrUnsupported) {
			t.Errorf("preflight(%s, %s): %v, want ErrUnsupported", tc.goos, tc.o.VMType, err)
		}
	}
	if err := preflight("linux", Options{VMType: VMTypeQEMU}, found); err != nil {
		t.Errorf("linux qemu: %v", err)
	}
}

// The guest account the provisioning script creates is the one berth's transport logs in as.
func TestGuestUserIsTransportDefault(t *testing.T) {
	if GuestUser != transport.DefaultUser {
		t.Fatalf("GuestUser %q, transport.DefaultUser %q", GuestUser, transport.DefaultUser)
	}
	if !strings.Contains(ProvisionScript(nil), "useradd --system --gid "+GuestUser) {
		t.Fatal("the provisioning script does not create the guest user")
	}
}

func TestAgentCandidates(t *testing.T) {
	got := agentCandidates([]string{"/opt/homebrew/bin/berth", "/opt/homebrew/Cellar/berth/1.0/bin/berth"}, "arm64")
	want := []string{
		"/opt/homebrew/bin/linux-arm64/berth-agent",
		"/opt/homebrew/libexec/berth-agent",
		"/opt/homebrew/bin/berth-agent",
		"/opt/homebrew/Cellar/berth/1.0/bin/linux-arm64/berth-agent",
		"/opt/homebrew/Cellar/berth/1.0/libexec/berth-agent", // the formula's libexec.install
		"/opt/homebrew/Cellar/berth/1.0/bin/berth-agent",
		"bin/linux-arm64/berth-agent",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("agentCandidates:\n got %q\nwant %q", got, want)
	}
}
