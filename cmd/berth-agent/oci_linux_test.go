package main

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func TestParseSignal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want syscall.Signal
	}{
		{"KILL", unix.SIGKILL}, {"SIGKILL", unix.SIGKILL}, {"kill", unix.SIGKILL}, {"sigterm", unix.SIGTERM},
		{"9", unix.SIGKILL}, {"15", unix.SIGTERM}, {"USR1", unix.SIGUSR1}, {"SIGHUP", unix.SIGHUP}, {"34", 34},
	} {
		got, err := parseSignal(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseSignal(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "0", "-1", "65", "NOPE", "SIG"} {
		if _, err := parseSignal(bad); !errors.Is(err, errUsage) {
			t.Errorf("parseSignal(%q) err = %v; want errUsage", bad, err)
		}
	}
}

func TestCheckTerminal(t *testing.T) {
	for _, tc := range []struct {
		terminal, detach bool
		socket           string
		want             error
	}{
		{false, false, "", nil},
		{false, true, "", nil},
		{true, false, "", nil},
		{true, true, "/s", nil},
		{true, true, "", errNeedConsoleSkt},
		{false, true, "/s", errConsoleSktNoTT},
		{true, false, "/s", errConsoleSktNoTT},
	} {
		if got := checkTerminal(tc.terminal, tc.detach, tc.socket); got != tc.want {
			t.Errorf("checkTerminal(%v, %v, %q) = %v; want %v", tc.terminal, tc.detach, tc.socket, got, tc.want)
		}
	}
}

func TestCheckArgs(t *testing.T) {
	for _, tc := range []struct {
		got, n int
		ok     bool
	}{{1, 1, true}, {0, 1, false}, {2, 1, false}, {0, 0, true}, {2, -2, true}, {3, -2, true}, {1, -2, false}} {
		err := checkArgs("x", tc.got, tc.n)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, errUsage)) {
			t.Errorf("checkArgs(%d, %d) = %v; want ok=%v", tc.got, tc.n, err, tc.ok)
		}
	}
}

func TestExitStatus(t *testing.T) {
	// Wait statuses as the kernel encodes them: exit code in bits 8-15, terminating signal in 0-6.
	for _, tc := range []struct {
		ws   syscall.WaitStatus
		want int
	}{{0, 0}, {3 << 8, 3}, {255 << 8, 255}, {syscall.WaitStatus(unix.SIGKILL), 137}, {syscall.WaitStatus(unix.SIGTERM), 143}} {
		err := exitStatus(tc.ws)
		got := 0
		if err != nil {
			ec, ok := err.(cli.ExitCoder)
			if !ok {
				t.Fatalf("exitStatus(%#x) = %v, not a cli.ExitCoder", int(tc.ws), err)
			}
			got = ec.ExitCode()
		}
		if got != tc.want {
			t.Errorf("exitStatus(%#x) exits %d; want %d", int(tc.ws), got, tc.want)
		}
	}
}

func TestForwardable(t *testing.T) {
	for sig, want := range map[syscall.Signal]bool{
		unix.SIGTERM: true, unix.SIGINT: true, unix.SIGHUP: true, unix.SIGUSR1: true,
		unix.SIGCHLD: false, unix.SIGWINCH: false, unix.SIGURG: false,
	} {
		if got := forwardable(sig); got != want {
			t.Errorf("forwardable(%v) = %v; want %v", sig, got, want)
		}
	}
}

func TestExecProcess(t *testing.T) {
	base := &specs.Process{
		Terminal: true,
		User:     specs.User{UID: 5, GID: 6, AdditionalGids: []uint32{7}},
		Args:     []string{"sleep", "inf"},
		Env:      []string{"PATH=/bin", "A=1"},
		Cwd:      "/srv",
		Capabilities: &specs.LinuxCapabilities{
			Bounding: []string{"CAP_CHOWN"}, Effective: []string{"CAP_CHOWN"}, Permitted: []string{"CAP_CHOWN"},
		},
	}
	baseCopy := *base
	baseCaps := *base.Capabilities

	p, err := execProcess(base, execFlags{Args: []string{"ls", "-l"}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Args, []string{"ls", "-l"}) || p.Terminal || p.Cwd != "/srv" ||
		p.User.UID != 5 || p.User.GID != 6 || !reflect.DeepEqual(p.Env, base.Env) {
		t.Errorf("defaults not taken from the container's process: %+v", p)
	}

	p, err = execProcess(base, execFlags{
		Args: []string{"id"}, Tty: true, Cwd: "/tmp", Env: []string{"B=2"}, User: "1000:1001",
		AdditionalGids: []int{20}, Caps: []string{"net_admin", "CAP_SYS_TIME"}, NoNewPrivs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Terminal || p.Cwd != "/tmp" || p.User.UID != 1000 || p.User.GID != 1001 || !p.NoNewPrivileges {
		t.Errorf("flags not applied: %+v", p)
	}
	if want := []string{"PATH=/bin", "A=1", "B=2"}; !reflect.DeepEqual(p.Env, want) {
		t.Errorf("env = %q; want %q", p.Env, want)
	}
	if want := []uint32{7, 20}; !reflect.DeepEqual(p.User.AdditionalGids, want) {
		t.Errorf("additional gids = %v; want %v", p.User.AdditionalGids, want)
	}
	if want := []string{"CAP_CHOWN", "CAP_NET_ADMIN", "CAP_SYS_TIME"}; !reflect.DeepEqual(p.Capabilities.Bounding, want) ||
		!reflect.DeepEqual(p.Capabilities.Effective, want) || !reflect.DeepEqual(p.Capabilities.Permitted, want) {
		t.Errorf("capabilities = %+v; want %q added", p.Capabilities, want)
	}
	// The container's own process must not change.
	if !reflect.DeepEqual(*base, baseCopy) || !reflect.DeepEqual(*base.Capabilities, baseCaps) {
		t.Errorf("execProcess modified its base: %+v", base)
	}

	p, err = execProcess(base, execFlags{Args: []string{"id"}, User: "42"})
	if err != nil || p.User.UID != 42 || p.User.GID != 6 {
		t.Errorf("user 42: %+v, %v; want uid 42, gid kept", p.User, err)
	}
	p, err = execProcess(nil, execFlags{Args: []string{"id"}})
	if err != nil || p.Cwd != "/" {
		t.Errorf("nil base: %+v, %v; want cwd /", p, err)
	}

	for _, f := range []execFlags{
		{},
		{Args: []string{"id"}, User: "root"},
		{Args: []string{"id"}, User: "1:wheel"},
		{Args: []string{"id"}, AdditionalGids: []int{-1}},
	} {
		if _, err := execProcess(base, f); !errors.Is(err, errUsage) {
			t.Errorf("execProcess(%+v) err = %v; want errUsage", f, err)
		}
	}
}

func TestWriteTable(t *testing.T) {
	created := time.Date(2026, 11, 30, 10, 0, 0, 5, time.UTC)
	var buf bytes.Buffer
	err := writeTable(&buf, []ociStateJSON{{
		State:   specs.State{ID: "c1", Pid: 42, Status: specs.StateRunning, Bundle: "/b"},
		Created: created, Owner: "root",
	}})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "ID PID STATUS BUNDLE CREATED OWNER" {
		t.Fatalf("table = %q", buf.String())
	}
	if got, want := strings.Fields(lines[1]), []string{"c1", "42", "running", "/b", "2026-11-30T10:00:00.000000005Z", "root"}; !reflect.DeepEqual(got, want) {
		t.Errorf("row = %q; want %q", got, want)
	}
}

func TestOCIFeaturesJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := writeJSON(&buf, ociFeatures()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"ociVersionMin": "1.0.0"`, `"ociVersionMax": "` + specs.Version + `"`, `"systemd": false`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("features JSON lacks %s:\n%s", want, buf.String())
		}
	}
}
