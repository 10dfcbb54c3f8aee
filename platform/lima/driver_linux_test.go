package lima

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-dev/berth/platform"
)

// These tests drive the real exec path against testdata/fake-limactl (a shell script keeping state in
// LIMA_HOME); the agent binary is the test binary itself, a Linux ELF for this arch.

func fakeDriver(t *testing.T, sshPort int) (*Driver, platform.Instance) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{"host_key": "HOSTKEY\n", "authorized_keys": "ssh-ed25519 AAAA test\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	inst := platform.Instance{
		Name: "pt", Dir: dir, CPUs: 2, MemoryMiB: 1024,
		HostKeyFile: filepath.Join(dir, "host_key"), AuthorizedKeysFile: filepath.Join(dir, "authorized_keys"),
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	fake, err := filepath.Abs("testdata/fake-limactl")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("FAKE_SSH_PORT", strconv.Itoa(sshPort))
	d, err := New(inst, Options{Limactl: fake, VMType: VMTypeQEMU, HomeDir: "/home/ann", AgentPath: exe})
	if err != nil {
		t.Fatal(err)
	}
	return d, inst
}

func argvLog(t *testing.T, d *Driver) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.opts.LimaHome, "argv.log"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(l, "list ") { // Status/entry calls are incidental
			out = append(out, l)
		}
	}
	return out
}

func wantState(t *testing.T, d *Driver, want platform.State) platform.Status {
	t.Helper()
	st, err := d.Status(context.Background())
	if err != nil || st.State != want {
		t.Fatalf("Status = %+v, %v; want %s", st, err, want)
	}
	return st
}

func TestDriverLifecycleWithFakeLimactl(t *testing.T) {
	// A TCP listener stands in for the guest's sshd at the address "limactl list" reports.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- err.Error()
			return
		}
		defer c.Close()
		buf := make([]byte, 5)
		n, _ := c.Read(buf)
		accepted <- string(buf[:n])
	}()
	d, inst := fakeDriver(t, ln.Addr().(*net.TCPAddr).Port)
	ctx := context.Background()

	wantState(t, d, platform.StateNotCreated)
	if err := d.Start(ctx); !errors.Is(err, platform.ErrNotCreated) {
		t.Fatalf("Start before Create: %v", err)
	}
	for range 2 {
		if err := d.Create(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wantState(t, d, platform.StateStopped)
	if c, err := d.Dial(ctx); !errors.Is(err, platform.ErrNotRunning) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("Dial before Start: %v", err)
	}
	// lima.yaml in the instance dir and the copy limactl got agree; the share holds agent and keys.
	y, err := os.ReadFile(d.YAMLPath())
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := os.ReadFile(filepath.Join(d.opts.LimaHome, "berth-pt", "lima.yaml")); err != nil || string(cp) != string(y) {
		t.Fatalf("limactl create got another file: %v", err)
	}
	if !strings.Contains(string(y), "location: "+filepath.Join(inst.Dir, "lima-share")) || !strings.Contains(string(y), "memory: 1024MiB") {
		t.Errorf("lima.yaml lacks the share or the memory:\n%s", y)
	}
	for name, mode := range map[string]os.FileMode{shareAgent: 0o755, shareHostKey: 0o600, shareAuthorizedKeys: 0o644} {
		fi, err := os.Stat(filepath.Join(inst.Dir, "lima-share", name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("share/%s: %v, mode %v; want %v", name, err, fi.Mode().Perm(), mode)
		}
	}

	for range 2 {
		if err := d.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	st := wantState(t, d, platform.StateRunning)
	if st.Endpoint != "tcp:"+ln.Addr().String() || st.PID != 4242 {
		t.Errorf("running status %+v", st)
	}
	c, err := d.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello"))
	c.Close()
	if got := <-accepted; got != "hello" {
		t.Errorf("the listener got %q", got)
	}

	for range 2 {
		if err := d.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wantState(t, d, platform.StateStopped)
	want := []string{
		"create --tty=false --name=berth-pt " + d.YAMLPath(),
		"start --tty=false --timeout=10m0s berth-pt",
		"stop --tty=false berth-pt",
	}
	if got := argvLog(t, d); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("limactl calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	for range 2 {
		if err := d.Delete(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wantState(t, d, platform.StateNotCreated)
	for _, p := range []string{d.YAMLPath(), filepath.Join(inst.Dir, "lima-share"), d.opts.LimaHome} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after Delete: %v", p, err)
		}
	}
}

func TestDriverLimactlFailure(t *testing.T) {
	d, _ := fakeDriver(t, 1)
	ctx := context.Background()
	if err := d.Create(ctx); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FAKE_FAIL", "start")
	err := d.Start(ctx)
	if !errors.Is(err, ErrLimactl) || !errors.Is(err, platform.ErrAgentFailed) || !strings.Contains(err.Error(), "failed on purpose") {
		t.Fatalf("failing limactl start: %v", err)
	}
	wantState(t, d, platform.StateStopped)
	t.Setenv("FAKE_FAIL", "")
	if err := d.Delete(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDriverRejectsWrongAgent(t *testing.T) {
	d, _ := fakeDriver(t, 1)
	d.opts.AgentPath = "testdata/fake-limactl" // a script, not an ELF
	if err := d.Create(context.Background()); !errors.Is(err, ErrAgentBinary) {
		t.Fatalf("Create with a non-ELF agent: %v", err)
	}
	wantState(t, d, platform.StateNotCreated)
}
