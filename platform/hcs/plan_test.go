package hcs

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/guestagent/runtime/container"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// golden compares v, as indented JSON, with testdata/name; -update rewrites it.
func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
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
		t.Errorf("%s differs from the golden file (check, then run with -update):\n%s", name, got)
	}
}

func TestCleanWindowsPath(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		unc      bool
	}{
		{`C:\data`, `C:\data`, false},
		{`c:\data\`, `C:\data`, false},
		{`c:/data//logs/`, `C:\data\logs`, false},
		{`D:\`, `D:\`, false},
		{`C:\Program Files\app`, `C:\Program Files\app`, false},
		{`C:\a.b\file.txt`, `C:\a.b\file.txt`, false},
		{`\\fs01\share\dir`, `\\fs01\share\dir`, true},
		{`//fs01/share`, `\\fs01\share`, true},
		{`C:\connection`, `C:\connection`, false}, // "CON" only as a whole name
	} {
		got, err := CleanWindowsPath(tc.in, tc.unc)
		if err != nil || got != tc.want {
			t.Errorf("CleanWindowsPath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		in  string
		unc bool
	}{
		{``, false},
		{`C:..\x`, false},    // drive-relative
		{`C:x`, false},       // drive-relative
		{`C:`, false},        // the current directory of C:
		{`\x`, false},        // rooted, no drive
		{`/x`, false},        // rooted, no drive
		{`x\y`, false},       // relative
		{`..\x`, false},      // relative
		{`\\?\C:\x`, false},  // device path
		{`\\?\C:\x`, true},   // device path, even with UNC allowed
		{`\\.\pipe\x`, true}, // device namespace
		{`//?/C:/x`, true},   // device path with slashes
		{`\??\C:\x`, false},  // NT object path
		{`\\fs01\share\dir`, false},
		{`\\fs01`, true},      // UNC without share
		{`\\fs01\\dir`, true}, // UNC with empty share
		{`C:\a\..\b`, false},
		{`C:\a\.\b`, false},
		{`C:\a\..`, false},
		{`C:\a:stream`, false}, // alternate data stream
		{`C:\a*b`, false},
		{`C:\a"b`, false},
		{"C:\\a\x01b", false},
		{`C:\dir.`, false},
		{`C:\dir `, false},
		{`C:\NUL`, false},
		{`C:\x\con.txt`, false},
		{`C:\COM1\y`, false},
		{`C:\lpt9.log`, false},
		{`\\srv\aux\x`, true},
	} {
		if got, err := CleanWindowsPath(tc.in, tc.unc); !errors.Is(err, ErrInvalidPath) || !errors.Is(err, container.ErrInvalid) {
			t.Errorf("CleanWindowsPath(%q, unc=%v) = %q, %v; want ErrInvalidPath", tc.in, tc.unc, got, err)
		}
	}
}

func TestParseBind(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Bind
		unc  bool
	}{
		{`C:\src:C:\dst`, Bind{Source: `C:\src`, Destination: `C:\dst`}, false},
		{`c:/src:c:/dst:ro`, Bind{Source: `C:\src`, Destination: `C:\dst`, ReadOnly: true}, false},
		{`C:\src:C:\dst:RW`, Bind{Source: `C:\src`, Destination: `C:\dst`}, false},
		{`\\fs01\share\d:C:\mnt\d:ro`, Bind{Source: `\\fs01\share\d`, Destination: `C:\mnt\d`, ReadOnly: true}, true},
	} {
		got, err := ParseBind(tc.in, tc.unc)
		if err != nil || got != tc.want {
			t.Errorf("ParseBind(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		in  string
		unc bool
	}{
		{`C:\src`, false},                   // no destination
		{`myvolume:C:\data`, false},         // named volume
		{`/src:/dst`, false},                // Linux-style bind
		{`C:..\x:C:\dst`, false},            // drive-relative source
		{`C:\src:C:..\dst`, false},          // drive-relative destination
		{`C:\src:\dst`, false},              // destination without drive
		{`C:\src:C:\`, false},               // drive root destination
		{`C:\src:C:\dst:rx`, false},         // bad mode
		{`C:\src:C:\dst:ro:z`, false},       // trailing junk
		{`\\?\C:\src:C:\dst`, true},         // device source
		{`\\.\C:\src:C:\dst`, true},         // device source
		{`\\fs01\share\d:C:\dst`, false},    // UNC not allowed
		{`C:\src:\\fs01\share\d`, true},     // UNC destination
		{`C:\a\..\..\Windows:C:\x`, false},  // traversal
		{`C:\src:C:\dst\..\Windows`, false}, // traversal in destination
	} {
		if got, err := ParseBind(tc.in, tc.unc); !errors.Is(err, ErrInvalidMount) {
			t.Errorf("ParseBind(%q, unc=%v) = %+v, %v; want ErrInvalidMount", tc.in, tc.unc, got, err)
		}
	}
}

// seqAlloc hands out 49152, 49153, … per protocol.
func seqAlloc() PortAllocator {
	next := map[string]uint16{}
	return func(proto string) (uint16, error) {
		next[proto]++
		return 49151 + next[proto], nil
	}
}

func TestNatPolicies(t *testing.T) {
	got, err := NatPolicies(map[string][]container.PortBinding{
		"80/tcp":   {{HostPort: "8080"}, {HostIP: "0.0.0.0", HostPort: "8081"}},
		"53/udp":   {{HostPort: "5353"}},
		"443":      {{HostIP: "::", HostPort: ""}},
		"9000/tcp": {{HostPort: "0"}},
	}, seqAlloc())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "nat-policies.json", got)

	for _, bad := range []map[string][]container.PortBinding{
		{"80/sctp": {{HostPort: "80"}}},
		{"0/tcp": {{HostPort: "80"}}},
		{"70000/tcp": {{HostPort: "80"}}},
		{"80/tcp": {{HostPort: "80-90"}}},
		{"80/tcp": {{HostPort: "x"}}},
		{"80/tcp": {{HostIP: "127.0.0.1", HostPort: "80"}}},
		{"80/tcp": {{HostIP: "localhost", HostPort: "80"}}},
		{"80/tcp": {{HostPort: "8080"}}, "81/tcp": {{HostPort: "8080"}}},
	} {
		if p, err := NatPolicies(bad, seqAlloc()); !errors.Is(err, ErrInvalidPort) {
			t.Errorf("NatPolicies(%v) = %+v, %v; want ErrInvalidPort", bad, p, err)
		}
	}
	if _, err := NatPolicies(map[string][]container.PortBinding{"80/tcp": {{}}}, nil); !errors.Is(err, ErrInvalidPort) {
		t.Errorf("no allocator: %v", err)
	}
	failing := func(string) (uint16, error) { return 0, errors.New("exhausted") }
	if _, err := NatPolicies(map[string][]container.PortBinding{"80/tcp": {{}}}, failing); !errors.Is(err, ErrInvalidPort) {
		t.Errorf("failing allocator: %v", err)
	}
}

func baseInput() PlanInput {
	return PlanInput{
		ID: "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c",
		Options: container.CreateOptions{
			Config: container.Config{
				Image: "mcr.microsoft.com/windows/nanoserver:ltsc2022",
				Env:   []string{"PATH=C:\\Windows\\system32;C:\\app", "GREETING=hello world"},
				Cmd:   []string{`C:\app\server.exe`, "--listen", ":8080", `C:\data dir\`, `say "hi"`},
			},
			HostConfig: container.HostConfig{
				Binds:     []string{`C:\Users\ann\site:C:\site:ro`, `D:\data:C:\data`},
				Memory:    512<<20 + 1,
				NanoCPUs:  1_500_000_000,
				CPUShares: 512,
			},
		},
		Image: ImageConfig{
			Env:        []string{"Path=C:\\Windows\\system32", "APP_HOME=C:\\app"},
			Cmd:        []string{"cmd", "/C", "echo image default"},
			WorkingDir: `C:\app`,
			User:       "ContainerUser",
		},
		Storage: Storage{
			ScratchFolder: `C:\ProgramData\berth\windowsfilter\4f1c2d3e4f5a`,
			VolumePath:    `\\?\Volume{0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e}\`,
			Layers: []Layer{
				{ID: "6b0a2a34-6cde-5f4a-9b1e-8e43a1c1d3a2", Path: `C:\ProgramData\berth\windowsfilter\sha256-app`},
				{ID: "0c5a0a8e-1234-5678-9abc-def012345678", Path: `C:\ProgramData\berth\windowsfilter\sha256-base`},
			},
		},
		HostCPUs:   4,
		EndpointID: "a1b2c3d4-0000-1111-2222-333344445555",
	}
}

func TestMakePlanGolden(t *testing.T) {
	proc := baseInput()
	p, err := MakePlan(proc)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "plan-process.json", p)

	hv := baseInput()
	hv.Isolation = IsolationHyperV
	hv.EndpointID = ""
	hv.Options.HostConfig.NetworkMode = "none"
	hv.Options.Config = container.Config{Hostname: "web", Tty: true, OpenStdin: true, Entrypoint: []string{}, Cmd: []string{"powershell", "-NoLogo"}}
	p, err = MakePlan(hv)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "plan-hyperv.json", p)
}

func TestMakePlanRules(t *testing.T) {
	// Image defaults apply when the request has none; a shell-form image command is used as it is.
	in := baseInput()
	in.Options.Config.Cmd = nil
	in.Image = ImageConfig{Cmd: []string{`cmd /S /C "echo hi"`}, ArgsEscaped: true}
	p, err := MakePlan(in)
	if err != nil {
		t.Fatal(err)
	}
	if p.Process.CommandLine != `cmd /S /C "echo hi"` {
		t.Errorf("escaped image command: %q", p.Process.CommandLine)
	}
	// Environment names are case-insensitive: the request's PATH replaces the image's Path.
	in = baseInput()
	p, _ = MakePlan(in)
	if _, ok := p.Process.Environment["Path"]; ok || p.Process.Environment["PATH"] != `C:\Windows\system32;C:\app` {
		t.Errorf("environment: %v", p.Process.Environment)
	}
	if p.Document.ProcessorMaximum != 3750 || p.Document.ProcessorWeight != 512 || p.Document.MemoryMaximumInMB != 513 {
		t.Errorf("resources: %+v", p.Document)
	}

	for name, mutate := range map[string]func(*PlanInput){
		"privileged":     func(in *PlanInput) { in.Options.HostConfig.Privileged = true },
		"cap-add":        func(in *PlanInput) { in.Options.HostConfig.CapAdd = []string{"NET_ADMIN"} },
		"read-only":      func(in *PlanInput) { in.Options.HostConfig.ReadonlyRootfs = true },
		"host network":   func(in *PlanInput) { in.Options.HostConfig.NetworkMode = "host" },
		"isolation":      func(in *PlanInput) { in.Isolation = "default" },
		"no layers":      func(in *PlanInput) { in.Storage.Layers = nil },
		"no id":          func(in *PlanInput) { in.ID = "" },
		"no command":     func(in *PlanInput) { in.Options.Config.Cmd = nil; in.Image.Cmd = nil },
		"bad env":        func(in *PlanInput) { in.Options.Config.Env = []string{"=x"} },
		"bad workdir":    func(in *PlanInput) { in.Options.Config.WorkingDir = `C:..\x` },
		"bad bind":       func(in *PlanInput) { in.Options.HostConfig.Binds = []string{`C:\a\..\..:C:\x`} },
		"dup mountpoint": func(in *PlanInput) { in.Options.HostConfig.Binds = []string{`C:\a:C:\x`, `C:\b:c:\X`} },
	} {
		in := baseInput()
		mutate(&in)
		if p, err := MakePlan(in); !errors.Is(err, container.ErrInvalid) {
			t.Errorf("%s: MakePlan = %+v, %v; want an invalid-parameter error", name, p, err)
		}
	}
}

func TestCommandLine(t *testing.T) {
	// Cases from Microsoft's documentation of how the C runtime parses a command line, inverted.
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"a", "b", "c"}, `a b c`},
		{[]string{"a b", "c"}, `"a b" c`},
		{[]string{""}, `""`},
		{[]string{`ab"c`, `\`, "d"}, `"ab\"c" \ d`},
		{[]string{`a\\\b`, "de fg", "h"}, `a\\\b "de fg" h`},
		{[]string{`a\"b`, "c", "d"}, `"a\\\"b" c d`},
		{[]string{`a\\b c`, "d", "e"}, `"a\\b c" d e`},
		{[]string{`C:\data dir\`}, `"C:\data dir\\"`},
		{[]string{"tab\there"}, "\"tab\there\""},
	} {
		if got := CommandLine(tc.argv); got != tc.want {
			t.Errorf("CommandLine(%q) = %s, want %s", tc.argv, got, tc.want)
		}
	}
}

func TestNetworkMode(t *testing.T) {
	for in, want := range map[string]string{"": NetworkNAT, "default": NetworkNAT, "bridge": NetworkNAT, "nat": NetworkNAT, "none": NetworkNone} {
		if got, err := NetworkMode(in); err != nil || got != want {
			t.Errorf("NetworkMode(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"host", "container:abc", "mynet"} {
		if _, err := NetworkMode(in); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("NetworkMode(%q): %v", in, err)
		}
	}
}

func TestPipeSDDL(t *testing.T) {
	got, err := PipeSDDL("S-1-5-21-3623811015-3361044348-30300820-1013")
	if want := "D:P(A;;GA;;;BA)(A;;GA;;;S-1-5-21-3623811015-3361044348-30300820-1013)"; err != nil || got != want {
		t.Errorf("PipeSDDL = %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{"", "S-1", "WD", "S-1-5-21-1)(A;;GA;;;WD", "s-1-5-18"} {
		if _, err := PipeSDDL(bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("PipeSDDL(%q): %v", bad, err)
		}
	}
	if PipeName != `\\.\pipe\berth_engine` {
		t.Error(PipeName)
	}
}
