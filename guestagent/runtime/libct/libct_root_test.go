//go:build root && linux

package libct

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestRunIsolation(t *testing.T) {
	rt := newRuntime(t)
	script := `echo pid=$$
echo host=$(hostname)
echo procs=$(ls /proc | grep '^[0-9]' | tr '\n' ' ')
echo masked=$(cat /proc/timer_list /proc/keys | wc -c)
if echo x > /proc/sys/kernel/domainname 2>/dev/null; then echo sys=rw; else echo sys=ro; fi
grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status
echo nofile=$(ulimit -n)
echo id=$(id -u):$(id -g)
echo tty=$(tty)
`
	bundle := newBundle(t, []string{"sh", "-c", script}, func(s *specs.Spec) {
		s.Process.NoNewPrivileges = true
	})
	p, out := createStart(t, rt, "iso", bundle)
	ws := waitExit(t, p)
	got := out.String()
	t.Logf("output:\n%s", got)
	if ws.ExitStatus() != 0 {
		t.Fatalf("exit status %v", ws)
	}
	want := capMask(defaultCaps)
	for _, line := range []string{
		"pid=1", "host=berthtest", "masked=0", "sys=ro", "nofile=1024", "id=0:0", "tty=not a tty",
		fmt.Sprintf("CapEff:\t%016x", want), fmt.Sprintf("CapBnd:\t%016x", want), "NoNewPrivs:\t1",
	} {
		if !strings.Contains(got, line+"\n") {
			t.Errorf("output lacks %q", line)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if procs, ok := strings.CutPrefix(l, "procs="); ok {
			for _, pid := range strings.Fields(procs) {
				if len(pid) > 2 {
					t.Errorf("container sees pid %s: not its own pid namespace (%s)", pid, procs)
				}
			}
		}
	}
}

// TestNoLeakedFds checks that the container process gets fds 0-2 only (ls
// itself opens 3 to read the directory).
func TestNoLeakedFds(t *testing.T) {
	rt := newRuntime(t)
	p, out := createStart(t, rt, "fds", newBundle(t, []string{"ls", "/proc/self/fd"}, nil))
	waitExit(t, p)
	if got := out.String(); got != "0\n1\n2\n3\n" {
		t.Errorf("fds of the container process: %q", got)
	}
}

func TestUserAndGroups(t *testing.T) {
	rt := newRuntime(t)
	bundle := newBundle(t, []string{"sh", "-c", "echo $(id -u):$(id -g):$(id -G) home=$HOME; grep CapEff /proc/self/status"}, func(s *specs.Spec) {
		s.Process.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 1000}}
		s.Process.Capabilities.Ambient = []string{"CAP_NET_BIND_SERVICE"}
		s.Process.Capabilities.Inheritable = []string{"CAP_NET_BIND_SERVICE"}
	})
	p, out := createStart(t, rt, "user", bundle)
	ws := waitExit(t, p)
	got := out.String()
	if ws.ExitStatus() != 0 || !strings.Contains(got, "1000:1000:1000 10 home=/home/u\n") {
		t.Fatalf("status %v, output %q", ws, got)
	}
	if want := fmt.Sprintf("CapEff:\t%016x\n", capMask([]string{"NET_BIND_SERVICE"})); !strings.Contains(got, want) {
		t.Errorf("output %q lacks %q (ambient capability)", got, want)
	}
}

func TestExitStatus(t *testing.T) {
	rt := newRuntime(t)
	p, _ := createStart(t, rt, "exit3", newBundle(t, []string{"sh", "-c", "exit 3"}, nil))
	if ws := waitExit(t, p); !ws.Exited() || ws.ExitStatus() != 3 {
		t.Fatalf("wait status %v, want exit 3", ws)
	}
}

func TestLifecycle(t *testing.T) {
	rt := newRuntime(t)
	ctx := context.Background()
	bundle := newBundle(t, []string{"sh", "-c", "read x"}, nil)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	p, err := rt.Create(ctx, "life", bundle, CreateOpts{Stdio: Stdio{Stdin: r}, PidFile: bundle + "/pid"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = rt.Delete(context.Background(), "life", true)
		_, _ = p.Wait()
	})
	r.Close()
	if _, err := rt.Create(ctx, "life", bundle, CreateOpts{}); !errors.Is(err, ErrExist) {
		t.Errorf("second create: %v, want ErrExist", err)
	}
	if pid, _ := os.ReadFile(bundle + "/pid"); string(pid) != fmt.Sprint(p.Pid) {
		t.Errorf("pid file %q, want %d", pid, p.Pid)
	}
	checkStatus(t, rt, "life", specs.StateCreated)
	// CVE-2019-5736: init runs our binary, which must not be writable
	// through /proc/<pid>/exe.
	exe, err := os.Open(fmt.Sprintf("/proc/%d/exe", p.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(int(exe.Fd()), &sfs); err != nil {
		t.Fatal(err)
	}
	seals, _ := unix.FcntlInt(exe.Fd(), unix.F_GET_SEALS, 0)
	if sfs.Flags&unix.ST_RDONLY == 0 && seals&unix.F_SEAL_WRITE == 0 {
		t.Error("init's executable is neither on a read-only mount nor sealed")
	}
	exe.Close()
	if s, _ := rt.State("life"); s == nil || s.Pid != p.Pid || s.Bundle != bundle {
		t.Errorf("state %+v", s)
	}
	// A created container can be deleted without force; that kills init.
	if err := rt.Delete(ctx, "life", false); err != nil {
		t.Fatal(err)
	}
	if ws := waitExit(t, p); ws.Signal() != syscall.SIGKILL {
		t.Errorf("init of deleted container: %v", ws)
	}
	if err := rt.Start(ctx, "life"); !errors.Is(err, ErrNotExist) {
		t.Errorf("start after delete: %v, want ErrNotExist", err)
	}

	// A second container walks through running and stopped.
	r2, w2, _ := os.Pipe()
	defer w2.Close()
	p2, err := rt.Create(ctx, "life2", bundle, CreateOpts{Stdio: Stdio{Stdin: r2}})
	r2.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = rt.Delete(context.Background(), "life2", true)
		_, _ = p2.Wait()
	})
	if err := rt.Start(ctx, "life2"); err != nil {
		t.Fatal(err)
	}
	checkStatus(t, rt, "life2", specs.StateRunning)
	if err := rt.Start(ctx, "life2"); !errors.Is(err, ErrNotCreated) {
		t.Errorf("second start: %v, want ErrNotCreated", err)
	}
	if err := rt.Delete(ctx, "life2", false); !errors.Is(err, ErrRunning) {
		t.Errorf("delete running: %v, want ErrRunning", err)
	}
	if list, err := rt.List(); err != nil || len(list) != 1 || list[0].ID != "life2" {
		t.Errorf("list %v, %v", list, err)
	}
	w2.Close() // sh's read returns; the container exits
	if ws := waitExit(t, p2); ws.ExitStatus() != 1 {
		t.Errorf("exit status %v", ws)
	}
	checkStatus(t, rt, "life2", specs.StateStopped)
	if err := rt.Kill("life2", syscall.SIGTERM, false); !errors.Is(err, ErrNotRunning) {
		t.Errorf("kill stopped: %v, want ErrNotRunning", err)
	}
	if err := rt.Delete(ctx, "life2", false); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.State("life2"); !errors.Is(err, ErrNotExist) {
		t.Errorf("state after delete: %v, want ErrNotExist", err)
	}
}

func checkStatus(t *testing.T, rt *Runtime, id string, want specs.ContainerState) {
	t.Helper()
	s, err := rt.State(id)
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != want {
		t.Fatalf("status %s, want %s", s.Status, want)
	}
}

func TestCreateReportsMissingExecutable(t *testing.T) {
	rt := newRuntime(t)
	_, err := rt.Create(context.Background(), "nosuch", newBundle(t, []string{"nosuch"}, nil), CreateOpts{})
	if err == nil || !strings.Contains(err.Error(), `exec: "nosuch": executable file not found in $PATH`) {
		t.Fatalf("create: %v", err)
	}
	if _, err := rt.State("nosuch"); !errors.Is(err, ErrNotExist) {
		t.Errorf("state after failed create: %v", err)
	}
}

func TestKill(t *testing.T) {
	rt := newRuntime(t)
	p, _ := createStart(t, rt, "kill", newBundle(t, []string{"sleep", "100"}, nil))
	if err := rt.Kill("kill", syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	if ws := waitExit(t, p); ws.Signal() != syscall.SIGKILL {
		t.Fatalf("status %v", ws)
	}
	p, _ = createStart(t, rt, "killall", newBundle(t, []string{"sleep", "100"}, nil))
	if err := rt.Kill("killall", syscall.SIGKILL, true); err != nil {
		t.Fatal(err)
	}
	if ws := waitExit(t, p); ws.Signal() != syscall.SIGKILL {
		t.Fatalf("status %v", ws)
	}
}

// nsLinks reads the namespace links of pid.
func nsLinks(t *testing.T, pid int) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range []string{"ipc", "uts", "net", "pid", "mnt", "cgroup"} {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, n))
		if err != nil {
			t.Fatal(err)
		}
		out[n] = l
	}
	return out
}

func TestExecJoinsEverything(t *testing.T) {
	rt := newRuntime(t)
	p, _ := createStart(t, rt, "exec", newBundle(t, []string{"sleep", "100"}, nil))
	out := newOutput(t)
	proc := &specs.Process{
		Args:         []string{"sh", "-c", "echo pid=$$; hostname; cat /proc/self/cgroup; read x"},
		Env:          []string{"PATH=/bin"},
		Cwd:          "/tmp",
		Capabilities: &specs.LinuxCapabilities{Bounding: defaultCaps, Effective: defaultCaps, Permitted: defaultCaps},
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdinW.Close()
	ep, err := rt.Exec(context.Background(), "exec", proc, ExecOpts{Stdio: Stdio{Stdin: stdinR, Stdout: out.w, Stderr: out.w}})
	stdinR.Close()
	if err != nil {
		t.Fatal(err)
	}
	initNS, execNS := nsLinks(t, p.Pid), nsLinks(t, ep.Pid)
	for n, l := range initNS {
		if execNS[n] != l {
			t.Errorf("namespace %s: exec'd process in %s, init in %s", n, execNS[n], l)
		}
		self, _ := os.Readlink("/proc/self/ns/" + n)
		if self == l {
			t.Errorf("namespace %s: init is in the test's own namespace", n)
		}
	}
	initCg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p.Pid))
	execCg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", ep.Pid))
	if string(initCg) != string(execCg) {
		t.Errorf("cgroups differ:\ninit:\n%s\nexec:\n%s", initCg, execCg)
	}
	stdinW.Close()
	if ws := waitExit(t, ep); ws.ExitStatus() != 1 {
		t.Errorf("exec status %v", ws)
	}
	got := out.String()
	if !strings.Contains(got, "berthtest\n") || strings.Contains(got, "pid=1\n") {
		t.Errorf("exec output %q", got)
	}
	t.Logf("exec output:\n%s", got)
	if _, err := rt.Exec(context.Background(), "exec", &specs.Process{Args: []string{"nosuch"}, Cwd: "/"}, ExecOpts{}); err == nil ||
		!strings.Contains(err.Error(), `exec: "nosuch": executable file not found in $PATH`) {
		t.Errorf("exec nosuch: %v", err)
	}
}
