//go:build root && linux

package main

// Root tests of the `oci` command line itself (exit codes, signal forwarding, the terminal relay, the
// create/start/state/kill/delete cycle): they build the agent, make a busybox-static bundle and run real
// containers. The OCI runtime-tools suite (test/oci-conformance.sh) covers the runtime's semantics.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ociEnv is a built agent, a runtime root and a bundle whose config each test rewrites.
type ociEnv struct {
	t      *testing.T
	bin    string
	root   string
	bundle string
}

func newOCIEnv(t *testing.T) *ociEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs containers")
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("needs busybox-static")
	}
	dir := t.TempDir()
	e := &ociEnv{t: t, bin: filepath.Join(dir, "berth-agent"), root: filepath.Join(dir, "root"), bundle: filepath.Join(dir, "bundle")}
	build := exec.Command("go", "build", "-o", e.bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	rootfs := filepath.Join(e.bundle, "rootfs")
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "tmp", "root"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chroot", rootfs, "/bin/busybox", "--install", "-s").CombinedOutput(); err != nil {
		t.Fatalf("busybox --install: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		out, _ := exec.Command(e.bin, "oci", "--root", e.root, "list", "-q").Output()
		for _, id := range strings.Fields(string(out)) {
			_ = exec.Command(e.bin, "oci", "--root", e.root, "delete", "--force", id).Run()
		}
	})
	return e
}

// setProcess writes a minimal config.json running args.
func (e *ociEnv) setProcess(terminal bool, args ...string) {
	e.t.Helper()
	spec := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "rootfs"},
		Process: &specs.Process{
			Terminal: terminal,
			Args:     args,
			Env:      []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"},
			Cwd:      "/",
		},
		Hostname: "oci-test",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace},
				{Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.NetworkNamespace}},
		},
	}
	data, err := json.Marshal(spec)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.bundle, "config.json"), data, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *ociEnv) cmd(args ...string) *exec.Cmd {
	return exec.Command(e.bin, append([]string{"oci", "--root", e.root}, args...)...)
}

// detached runs a command that leaves a container process behind (create, run -d). Its output goes to a
// file, not a pipe: the container inherits the runtime's stdio, so a pipe would stay open (as with runc).
func (e *ociEnv) detached(args ...string) (string, error) {
	e.t.Helper()
	f, err := os.CreateTemp(e.t.TempDir(), "out")
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	cmd := e.cmd(args...)
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Run()
	out, _ := os.ReadFile(f.Name())
	return string(out), err
}

// runExit runs cmd and returns its exit code.
func runExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return 0
}

func TestRootOCIRunExitCodes(t *testing.T) {
	e := newOCIEnv(t)
	for _, tc := range []struct {
		script string
		want   int
	}{{"exit 0", 0}, {"exit 7", 7}} {
		e.setProcess(false, "sh", "-c", tc.script)
		var stderr bytes.Buffer
		cmd := e.cmd("run", "--bundle", e.bundle, "exit-code")
		cmd.Stderr = &stderr
		if got := runExit(t, cmd); got != tc.want {
			t.Errorf("run %q exited %d; want %d (stderr %q)", tc.script, got, tc.want, stderr.String())
		}
	}
	// Killed by a signal: 128+signal. (The container's init cannot SIGKILL itself: it is its pid namespace's
	// init.)
	e.setProcess(false, "sh", "-c", "echo ready; exec sleep 1000")
	cmd := e.cmd("run", "--bundle", e.bundle, "killed")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("container said %q, %v; want ready", line, err)
	}
	if out, err := e.cmd("kill", "killed", "9").CombinedOutput(); err != nil {
		t.Fatalf("kill: %v\n%s", err, out)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 128+9 {
		t.Errorf("run of a SIGKILLed container: %v; want exit 137", err)
	}
	// A foreground run deletes its container.
	out, err := e.cmd("list", "-q").Output()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("list after run = %q, %v; want empty", out, err)
	}
}

func TestRootOCIRunForwardsSignals(t *testing.T) {
	e := newOCIEnv(t)
	e.setProcess(false, "sh", "-c", `trap "exit 42" TERM; echo ready; while :; do sleep 0.05; done`)
	cmd := e.cmd("run", "--bundle", e.bundle, "sig")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("container said %q, %v; want ready", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 42 {
		t.Errorf("run after SIGTERM: %v; want exit 42 from the container's trap", err)
	}
}

func TestRootOCILifecycle(t *testing.T) {
	e := newOCIEnv(t)
	e.setProcess(false, "sleep", "1000")
	pidFile := filepath.Join(t.TempDir(), "pid")
	if out, err := e.detached("create", "--bundle", e.bundle, "--pid-file", pidFile, "life"); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	state := func() ociStateJSON {
		t.Helper()
		out, err := e.cmd("state", "life").Output()
		if err != nil {
			t.Fatalf("state: %v", err)
		}
		var st ociStateJSON
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("state output %q: %v", out, err)
		}
		return st
	}
	st := state()
	pid, _ := os.ReadFile(pidFile)
	if st.Status != specs.StateCreated || st.ID != "life" || st.Bundle != e.bundle || st.Pid <= 0 ||
		strings.TrimSpace(string(pid)) != strconv.Itoa(st.Pid) || st.Created.IsZero() || st.Owner != "root" ||
		st.Rootfs != filepath.Join(e.bundle, "rootfs") {
		t.Fatalf("state after create = %+v (pid file %q)", st, pid)
	}
	if out, err := e.cmd("start", "life").CombinedOutput(); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if st := state(); st.Status != specs.StateRunning {
		t.Fatalf("status after start = %s; want running", st.Status)
	}
	out, err := e.cmd("list").Output()
	if err != nil || !strings.Contains(string(out), "life") || !strings.Contains(string(out), "running") {
		t.Errorf("list = %q, %v", out, err)
	}
	if code := runExit(t, e.cmd("delete", "life")); code != 1 {
		t.Errorf("delete of a running container exited %d; want 1", code)
	}
	if out, err := e.cmd("kill", "life", "KILL").CombinedOutput(); err != nil {
		t.Fatalf("kill: %v\n%s", err, out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for state().Status != specs.StateStopped {
		if time.Now().After(deadline) {
			t.Fatal("container not stopped 5s after SIGKILL")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if out, err := e.cmd("delete", "life").CombinedOutput(); err != nil {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	if code := runExit(t, e.cmd("state", "life")); code != 1 {
		t.Errorf("state of a deleted container exited %d; want 1", code)
	}
	if code := runExit(t, e.cmd("delete", "--force", "life")); code != 0 {
		t.Errorf("delete --force of a missing container exited %d; want 0", code)
	}
}

func TestRootOCIExec(t *testing.T) {
	e := newOCIEnv(t)
	e.setProcess(false, "sleep", "1000")
	if out, err := e.detached("run", "--detach", "--bundle", e.bundle, "ex"); err != nil {
		t.Fatalf("run -d: %v\n%s", err, out)
	}
	out, err := e.cmd("exec", "--env", "X=from-exec", "--cwd", "/tmp", "ex", "sh", "-c", `echo "$X $PWD $(hostname)"`).Output()
	if err != nil || string(out) != "from-exec /tmp oci-test\n" {
		t.Errorf("exec output %q, %v; want %q", out, err, "from-exec /tmp oci-test\n")
	}
	if code := runExit(t, e.cmd("exec", "ex", "sh", "-c", "exit 3")); code != 3 {
		t.Errorf("exec exit 3 exited %d", code)
	}
	out, err = e.cmd("exec", "--user", "1000:1001", "ex", "sh", "-c", "echo $(id -u):$(id -g)").Output()
	if err != nil || string(out) != "1000:1001\n" {
		t.Errorf("exec --user output %q, %v", out, err)
	}
}

func TestRootOCIRunTerminal(t *testing.T) {
	e := newOCIEnv(t)
	e.setProcess(true, "sh", "-c", "tty; echo hello")
	if got := runOnPty(t, e.cmd("run", "--bundle", e.bundle, "term")); !strings.Contains(got, "/dev/pts/0") ||
		!strings.Contains(got, "hello") {
		t.Errorf("run: terminal output %q; want the container's /dev/pts/0 and hello", got)
	}
	e.setProcess(false, "sleep", "1000")
	if out, err := e.detached("run", "--detach", "--bundle", e.bundle, "term-exec"); err != nil {
		t.Fatalf("run -d: %v\n%s", err, out)
	}
	if got := runOnPty(t, e.cmd("exec", "--tty", "term-exec", "sh", "-c", "tty; echo from-exec")); !strings.Contains(got, "/dev/pts/") ||
		!strings.Contains(got, "from-exec") {
		t.Errorf("exec -t: terminal output %q; want a /dev/pts/N and from-exec", got)
	}
}

// runOnPty runs cmd with a fresh pseudo-terminal as its stdio and returns what it wrote there.
func runOnPty(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var out bytes.Buffer
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(&out, ptmx); close(copied) }()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %v (output %q)", cmd.Args, err, out.String())
	}
	<-copied // EIO once the last slave fd (ours was closed, the runtime's exited) is gone
	return out.String()
}
