//go:build root && linux

package libct

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/guestagent/cgroups"
)

func TestTerminal(t *testing.T) {
	rt := newRuntime(t)
	bundle := newBundle(t, []string{"sh", "-c", "tty; echo out >/dev/null; echo done"}, func(s *specs.Spec) {
		s.Process.Terminal = true
		s.Process.ConsoleSize = &specs.Box{Height: 30, Width: 100}
	})
	ctx := context.Background()
	p, err := rt.Create(ctx, "tty", bundle, CreateOpts{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = rt.Delete(context.Background(), "tty", true)
		_, _ = p.Wait()
	})
	if p.Console == nil {
		t.Fatal("no console returned")
	}
	defer p.Console.Close()
	if err := rt.Start(ctx, "tty"); err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	r := bufio.NewReader(p.Console)
	for !strings.Contains(got.String(), "done") {
		line, err := r.ReadString('\n')
		got.WriteString(line)
		if err != nil {
			break
		}
	}
	if ws := waitExit(t, p); ws.ExitStatus() != 0 {
		t.Errorf("status %v", ws)
	}
	if !strings.Contains(got.String(), "/dev/pts/0\r\n") {
		t.Errorf("console output %q lacks /dev/pts/0", got.String())
	}
}

func TestConsoleSocket(t *testing.T) {
	rt := newRuntime(t)
	sock := filepath.Join(t.TempDir(), "console.sock")
	ln, err := listenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	bundle := newBundle(t, []string{"sh", "-c", "echo hello-console"}, func(s *specs.Spec) { s.Process.Terminal = true })
	type recv struct {
		name string
		f    *os.File
		err  error
	}
	ch := make(chan recv, 1)
	go func() {
		name, f, err := acceptConsole(ln)
		ch <- recv{name, f, err}
	}()
	ctx := context.Background()
	p, err := rt.Create(ctx, "csock", bundle, CreateOpts{ConsoleSocket: sock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = rt.Delete(context.Background(), "csock", true)
		_, _ = p.Wait()
	})
	rc := <-ch
	if rc.err != nil {
		t.Fatal(rc.err)
	}
	defer rc.f.Close()
	if rc.name != "/dev/pts/0" || p.Console != nil {
		t.Errorf("name %q, Console %v", rc.name, p.Console)
	}
	if err := rt.Start(ctx, "csock"); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(rc.f).ReadString('\n')
	if line != "hello-console\r\n" {
		t.Errorf("console line %q", line)
	}
	waitExit(t, p)
}

func TestMemoryLimitOOM(t *testing.T) {
	rt := newRuntime(t)
	limit := int64(32 << 20)
	bundle := newBundle(t, []string{"sh", "-c", "x=a; while true; do x=$x$x; done"}, func(s *specs.Spec) {
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
	})
	p, _ := createStart(t, rt, "oom", bundle)
	ws := waitExit(t, p)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("status %v, want SIGKILL", ws)
	}
	cg, err := cgroups.New("berth/oom")
	if err != nil {
		t.Fatal(err)
	}
	if oom, err := cg.OOMKilled(); err != nil || !oom {
		t.Errorf("OOMKilled %v, %v", oom, err)
	}
}

func TestPidsLimit(t *testing.T) {
	rt := newRuntime(t)
	bundle := newBundle(t, []string{"sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; echo spawned"}, func(s *specs.Spec) {
		limit := int64(4)
		s.Linux.Resources.Pids = &specs.LinuxPids{Limit: &limit}
	})
	p, out := createStart(t, rt, "pids", bundle)
	ws := waitExit(t, p)
	got := out.String()
	if ws.ExitStatus() == 0 && strings.Contains(got, "spawned") {
		t.Fatalf("8 children under pids.max 4: status %v, output %q", ws, got)
	}
	if !strings.Contains(got, "fork") {
		t.Errorf("output %q does not report the failed fork", got)
	}
}

// cgroupDirs lists the directories of cgroup path rel in every v1
// hierarchy (and the unified one) of this process.
func cgroupDirs(t *testing.T, rel string) []string {
	t.Helper()
	own, err := readSelfCgroups()
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for key, path := range own {
		name := key
		if strings.HasPrefix(key, "name=") {
			name = strings.TrimPrefix(key, "name=")
		}
		if key == "" {
			name = "unified"
		}
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", name, path, rel))
	}
	return dirs
}

func mountinfoLines(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	// Only this test's mounts: other tests on the machine mount too.
	var l []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.Contains(line, t.Name()) || strings.Contains(line, "berth") && strings.Contains(line, "cgroup") {
			l = append(l, line)
		}
	}
	sort.Strings(l)
	return l
}

// mountDiff lists lines only in before (-) or only in after (+).
func mountDiff(before, after []string) string {
	in := func(l []string, s string) bool {
		for _, x := range l {
			if x == s {
				return true
			}
		}
		return false
	}
	var out []string
	for _, l := range before {
		if !in(after, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range after {
		if !in(before, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

func TestDeleteLeavesNothing(t *testing.T) {
	rt := newRuntime(t)
	bundle := newBundle(t, []string{"sh", "-c", "sleep 100 & sleep 100"}, nil)
	before := mountinfoLines(t)
	p, _ := createStart(t, rt, "clean", bundle)
	ep, err := rt.Exec(context.Background(), "clean", &specs.Process{Args: []string{"sleep", "100"}, Cwd: "/"}, ExecOpts{})
	if err != nil {
		t.Fatal(err)
	}
	var existing int
	for _, d := range cgroupDirs(t, "berth/clean") {
		if _, err := os.Stat(d); err == nil {
			existing++
		}
	}
	if existing == 0 {
		t.Fatal("no cgroup directory for the container")
	}
	// The exec'd process is our child: it must be reaped for the container's
	// pid namespace to finish dying.
	epDone := make(chan syscall.WaitStatus, 1)
	go func() {
		ws, _ := ep.Wait()
		epDone <- ws
	}()
	if err := rt.Delete(context.Background(), "clean", true); err != nil {
		t.Fatal(err)
	}
	if ws := waitExit(t, p); ws.Signal() != syscall.SIGKILL {
		t.Errorf("init status %v", ws)
	}
	if ws := <-epDone; ws.Signal() != syscall.SIGKILL {
		t.Errorf("exec'd process status %v", ws)
	}
	if after := mountinfoLines(t); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("mount table changed:\n%s", mountDiff(before, after))
	}
	for _, d := range cgroupDirs(t, "berth/clean") {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s left: %v", d, err)
		}
	}
	if _, err := os.Stat(filepath.Join(rt.Root, "clean")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir left: %v", err)
	}
}

func TestHooksAndDevices(t *testing.T) {
	rt := newRuntime(t)
	dir := t.TempDir()
	hook := func(name string) specs.Hook {
		return specs.Hook{Path: "/usr/bin/busybox", Args: []string{"sh", "-c", "cat > " + filepath.Join(dir, name)}}
	}
	fm := os.FileMode(0o640)
	uid := uint32(1000)
	bundle := newBundle(t, []string{"sh", "-c", "stat -c '%A %u %t %T' /dev/test1 /dev/test3; echo > /dev/null && echo null-ok"}, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{
			Prestart:      []specs.Hook{hook("prestart")},
			CreateRuntime: []specs.Hook{hook("createRuntime")},
			Poststart:     []specs.Hook{{Path: "/bin/false"}, hook("poststart")},
			Poststop:      []specs.Hook{{Path: "/bin/false"}, hook("poststop")},
		}
		s.Linux.Devices = []specs.LinuxDevice{
			{Path: "/dev/test1", Type: "c", Major: 250, Minor: 1, FileMode: &fm, UID: &uid},
			{Path: "/dev/test3", Type: "p"},
		}
	})
	p, out := createStart(t, rt, "hooks", bundle)
	waitExit(t, p)
	got := out.String()
	if got != "crw-r----- 1000 fa 1\nprw-rw-rw- 0 0 0\nnull-ok\n" {
		t.Errorf("output %q", got)
	}
	if err := rt.Delete(context.Background(), "hooks", false); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"prestart", "createRuntime", "poststart", "poststop"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("hook %s did not run: %v", name, err)
			continue
		}
		if !strings.Contains(string(b), `"id":"hooks"`) {
			t.Errorf("hook %s got state %s", name, b)
		}
	}
}

func TestNoMountNamespace(t *testing.T) {
	rt := newRuntime(t)
	before := mountinfoLines(t)
	bundle := newBundle(t, []string{"sh", "-c", "ls /bin/busybox && echo ok"}, func(s *specs.Spec) {
		var ns []specs.LinuxNamespace
		for _, n := range s.Linux.Namespaces {
			if n.Type != specs.MountNamespace {
				ns = append(ns, n)
			}
		}
		s.Linux.Namespaces = ns
		s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
	})
	p, out := createStart(t, rt, "nomnt", bundle)
	waitExit(t, p)
	if got := out.String(); got != "/bin/busybox\nok\n" {
		t.Errorf("output %q", got)
	}
	if after := mountinfoLines(t); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("mount table of the runtime changed:\n%s", mountDiff(before, after))
	}
}

func TestWrongNamespacePath(t *testing.T) {
	rt := newRuntime(t)
	bundle := newBundle(t, []string{"true"}, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces[:0:0], specs.LinuxNamespace{Type: specs.IPCNamespace, Path: "/proc/self/ns/uts"},
			specs.LinuxNamespace{Type: specs.MountNamespace})
	})
	if _, err := rt.Create(context.Background(), "wrongns", bundle, CreateOpts{}); err == nil {
		t.Fatal("create joined a uts namespace as ipc")
	}
}

// TestStartLatency measures create+start+wait of `true`.
func TestStartLatency(t *testing.T) {
	rt := newRuntime(t)
	bundle := newBundle(t, []string{"true"}, nil)
	ctx := context.Background()
	var ds []time.Duration
	for i := 0; i < 20; i++ {
		id := fmt.Sprint("lat", i)
		t0 := time.Now()
		p, err := rt.Create(ctx, id, bundle, CreateOpts{})
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Wait(); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
		if err := rt.Delete(ctx, id, false); err != nil {
			t.Fatal(err)
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	t.Logf("create+start+wait of true, 20 runs: min %v median %v max %v", ds[0], ds[len(ds)/2], ds[len(ds)-1])
}

func TestExecTerminal(t *testing.T) {
	rt := newRuntime(t)
	p, _ := createStart(t, rt, "exectty", newBundle(t, []string{"sleep", "100"}, nil))
	_ = p
	ep, err := rt.Exec(context.Background(), "exectty", &specs.Process{Args: []string{"sh", "-c", "tty; echo done"}, Cwd: "/", Terminal: true}, ExecOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if ep.Console == nil {
		t.Fatal("no console")
	}
	defer ep.Console.Close()
	var got strings.Builder
	r := bufio.NewReader(ep.Console)
	for !strings.Contains(got.String(), "done") {
		line, err := r.ReadString('\n')
		got.WriteString(line)
		if err != nil {
			break
		}
	}
	waitExit(t, ep)
	if !strings.HasPrefix(got.String(), "/dev/pts/") {
		t.Errorf("console output %q", got.String())
	}
}

func TestRootfsPropagationShared(t *testing.T) {
	rt := newRuntime(t)
	before := mountinfoLines(t)
	bundle := newBundle(t, []string{"sh", "-c", "grep -E '^[0-9]+ [0-9]+ [0-9:]+ [^ ]+ / ' /proc/self/mountinfo"}, func(s *specs.Spec) {
		s.Linux.RootfsPropagation = "shared"
	})
	p, out := createStart(t, rt, "shared", bundle)
	if ws := waitExit(t, p); ws.ExitStatus() != 0 {
		t.Fatalf("status %v", ws)
	}
	if got := out.String(); !strings.Contains(got, "shared:") {
		t.Errorf("container root is not shared: %q", got)
	}
	if err := rt.Delete(context.Background(), "shared", false); err != nil {
		t.Fatal(err)
	}
	if after := mountinfoLines(t); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("mount table changed:\n%s", mountDiff(before, after))
	}
}

func TestUserNamespace(t *testing.T) {
	rt := newRuntime(t)
	bundle := newBundle(t, []string{"sh", "-c", "id -u; cat /proc/self/uid_map"}, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	})
	// The mapped root must be able to reach the bundle.
	for d := bundle; d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if d == os.TempDir() {
			break
		}
	}
	p, out := createStart(t, rt, "userns", bundle)
	ws := waitExit(t, p)
	got := out.String()
	if ws.ExitStatus() != 0 || !strings.HasPrefix(got, "0\n") || !strings.Contains(got, "100000") {
		t.Errorf("status %v, output %q", ws, got)
	}
	// Exec cannot join a user namespace: it must refuse, not run the
	// process as the host's root.
	if err := rt.Delete(context.Background(), "userns", false); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(string(b), "id -u; cat /proc/self/uid_map", "sleep 100", 1))
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	createStart(t, rt, "userns2", bundle)
	if _, err := rt.Exec(context.Background(), "userns2", &specs.Process{Args: []string{"true"}, Cwd: "/"}, ExecOpts{}); !errors.Is(err, ErrNotSupported) {
		t.Errorf("exec into a user namespace: %v, want ErrNotSupported", err)
	}
}

func TestSeccomp(t *testing.T) {
	rt := newRuntime(t)
	bundle := newBundle(t, []string{"sh", "-c", "mkdir /tmp/x 2>&1; sleep 100 & kill -9 $! 2>&1; kill -15 $! && echo term-ok"}, func(s *specs.Spec) {
		s.Process.NoNewPrivileges = true
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls: []specs.LinuxSyscall{
				{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno},
				{Names: []string{"kill"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 1, Value: 9, Op: specs.OpEqualTo}}},
			},
		}
	})
	p, out := createStart(t, rt, "seccomp", bundle)
	waitExit(t, p)
	got := out.String()
	if !strings.Contains(got, "mkdir: can't create directory '/tmp/x': Operation not permitted") ||
		!strings.Contains(got, "Operation not permitted") || !strings.Contains(got, "term-ok") {
		t.Errorf("output %q", got)
	}
	p2, _ := createStart(t, rt, "seccomp2", newBundle(t, []string{"sleep", "100"}, func(s *specs.Spec) {
		s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
			Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno}}}
	}))
	_ = p2
	eout := newOutput(t)
	ep, err := rt.Exec(context.Background(), "seccomp2", &specs.Process{Args: []string{"mkdir", "/tmp/y"}, Cwd: "/"}, ExecOpts{Stdio: Stdio{Stdout: eout.w, Stderr: eout.w}})
	if err != nil {
		t.Fatal(err)
	}
	if ws := waitExit(t, ep); ws.ExitStatus() == 0 {
		t.Errorf("mkdir in exec'd process succeeded: %q", eout.String())
	}
}

func TestNoPivot(t *testing.T) {
	rt := newRuntime(t)
	before := mountinfoLines(t)
	bundle := newBundle(t, []string{"sh", "-c", "ls / | tr '\\n' ' '; echo; hostname"}, nil)
	out := newOutput(t)
	ctx := context.Background()
	p, err := rt.Create(ctx, "nopivot", bundle, CreateOpts{NoPivot: true, Stdio: Stdio{Stdout: out.w, Stderr: out.w}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = rt.Delete(context.Background(), "nopivot", true)
		_, _ = p.Wait()
	})
	out.w.Close()
	if err := rt.Start(ctx, "nopivot"); err != nil {
		t.Fatal(err)
	}
	waitExit(t, p)
	if got := out.String(); got != "bin dev etc home proc sys tmp \nberthtest\n" {
		t.Errorf("output %q", got)
	}
	if err := rt.Delete(ctx, "nopivot", false); err != nil {
		t.Fatal(err)
	}
	if after := mountinfoLines(t); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("mount table changed:\n%s", mountDiff(before, after))
	}
}

func TestBindMountOptions(t *testing.T) {
	rt := newRuntime(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	bundle := newBundle(t, []string{"sh", "-c", "cat /rro/f /ro/f /rw/f; echo; touch /rro/x || echo rro-denied; touch /ro/x || echo ro-denied; touch /rw/x && echo rw-ok"}, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts,
			specs.Mount{Destination: "/rro", Type: "bind", Source: src, Options: []string{"rbind", "rro"}},
			specs.Mount{Destination: "/ro", Type: "none", Source: src, Options: []string{"bind", "ro", "nosuid"}},
			specs.Mount{Destination: "/rw", Type: "bind", Source: src, Options: []string{"rbind", "rw", "rprivate"}})
	})
	p, out := createStart(t, rt, "binds", bundle)
	waitExit(t, p)
	got := out.String()
	for _, want := range []string{"hellohellohello\n", "rro-denied", "ro-denied", "rw-ok"} {
		if !strings.Contains(got, want) {
			t.Errorf("output %q lacks %q", got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(src, "x")); err != nil {
		t.Errorf("write through the rw bind did not reach the source: %v", err)
	}
}

func TestPersonalityAndIOPriority(t *testing.T) {
	rt := newRuntime(t)
	bundle := newBundle(t, []string{"sh", "-c", "uname -m; ionice -p $$"}, func(s *specs.Spec) {
		s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32}
		s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 6}
	})
	p, out := createStart(t, rt, "persona", bundle)
	waitExit(t, p)
	got := out.String()
	if !strings.Contains(got, "best-effort: prio 6") {
		t.Errorf("ionice output %q", got)
	}
	if m := strings.SplitN(got, "\n", 2)[0]; m == "x86_64" || m == "aarch64" {
		t.Errorf("uname -m under LINUX32 is %q", m)
	}
}
