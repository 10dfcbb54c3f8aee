//go:build root

package container

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berth-dev/berth/guestagent/cgroups"
	"github.com/berth-dev/berth/guestagent/image"
	"github.com/berth-dev/berth/guestagent/runtime/jsonlog"
	"github.com/berth-dev/berth/guestagent/runtime/libct"
	"github.com/berth-dev/berth/guestagent/runtime/shim"
)

// The test binary doubles as container init and as shim.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case libct.InitArg:
			os.Exit(libct.InitMain())
		case shim.Arg:
			os.Exit(shim.Main())
		}
	}
	os.Exit(m.Run())
}

// busyboxLayer is a layer tar with busybox-static and its applets.
func busyboxLayer(t *testing.T) []byte {
	t.Helper()
	bb, err := os.ReadFile("/usr/bin/busybox")
	if err != nil {
		t.Skipf("needs busybox-static: %v", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, data []byte) {
		h.ModTime = time.Unix(1700000000, 0)
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin/", "etc/", "proc/", "sys/", "dev/", "root/", "home/"} {
		add(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755}, nil)
	}
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777}, nil)
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755}, bb)
	for _, a := range []string{"sh", "echo", "sleep", "cat", "dd", "readlink", "test", "true", "id", "head", "tty", "stty", "ls", "hostname"} {
		add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}, nil)
	}
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644}, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/sh\n"))
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/group", Mode: 0o644}, []byte("root:x:0:\nnogroup:x:65534:\n"))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type rootEnv struct {
	dir    string
	store  *image.Store
	opts   Options
	parent string
}

// newRootEnv loads a busybox image into a fresh store (privileged mode).
func newRootEnv(t *testing.T) *rootEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir, err := os.MkdirTemp("/var/tmp", "berth-ctr-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	layerTar := busyboxLayer(t)
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Cmd = []string{"sh"}
	cf.Config.Env = []string{"PATH=/bin"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag("berth.test/busybox:latest")
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if err := tarball.Write(tag, img, &archive); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store, err := image.Open(image.Options{Root: filepath.Join(dir, "images"), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if _, err := store.Load(context.Background(), &archive, nil); err != nil {
		t.Fatal(err)
	}
	parent := fmt.Sprintf("berth-test-%d", os.Getpid())
	e := &rootEnv{dir: dir, store: store, parent: parent, opts: Options{
		Root: filepath.Join(dir, "containers"), RunRoot: filepath.Join(dir, "run"), Images: store,
		Logger: logger, CgroupParent: parent,
		// BERTH_TEST_SHIM_BINARY runs a built berth-agent as shim (and init).
		ShimBinary: os.Getenv("BERTH_TEST_SHIM_BINARY"),
	}}
	t.Cleanup(func() {
		if m, err := cgroups.New(parent); err == nil {
			if err := m.Delete(); err != nil {
				t.Errorf("delete parent cgroup: %v", err)
			}
		}
	})
	t.Cleanup(func() {
		// Whatever a test left (it may have failed half-way): remove it
		// through a fresh manager, then insist that no mount remains.
		if m, err := Open(e.opts); err == nil {
			e.removeAll(t, m)
		} else {
			t.Errorf("reopen for cleanup: %v", err)
		}
		mi, _ := os.ReadFile("/proc/self/mountinfo")
		for _, line := range strings.Split(string(mi), "\n") {
			if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir) {
				t.Errorf("leaked mount %s", f[4])
				_ = syscall.Unmount(f[4], syscall.MNT_DETACH)
			}
		}
	})
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (e *rootEnv) open(t *testing.T) *Manager {
	t.Helper()
	m, err := Open(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// removeAll removes every container and checks that nothing is left behind.
func (e *rootEnv) removeAll(t *testing.T, m *Manager) {
	t.Helper()
	list, _ := m.List(ListOptions{All: true})
	for _, c := range list {
		if err := m.Remove(context.Background(), c.ID, true, true); err != nil {
			t.Errorf("remove %s: %v", c.ID, err)
		}
		assertNoLeaks(t, e, c.ID)
	}
	m.Close()
}

func assertNoLeaks(t *testing.T, e *rootEnv, id string) {
	t.Helper()
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if bytes.Contains(mi, []byte(id)) {
		t.Errorf("mount of %s left behind", id)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(id)) {
			t.Errorf("process %s (%q) of %s left behind", p, b, id)
		}
	}
	if m, err := cgroups.New(e.parent + "/" + id); err == nil {
		if pids, err := m.Pids(); err == nil {
			t.Errorf("cgroup of %s left behind (pids %v)", id, pids)
		}
	}
	if _, err := os.Stat(filepath.Join(e.opts.Root, id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory of %s left behind", id)
	}
}

func rootCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func run(t *testing.T, m *Manager, opts CreateOptions) (*Container, WaitResult) {
	t.Helper()
	ctx := rootCtx(t)
	if opts.Config.Image == "" {
		opts.Config.Image = "berth.test/busybox"
	}
	c, err := m.Create(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	w, err := m.Wait(ctx, c.ID, WaitNextExit)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	return c, waitResult(t, w)
}

func logText(t *testing.T, m *Manager, id string) string {
	t.Helper()
	var b strings.Builder
	if err := m.Logs(rootCtx(t), id, LogsOptions{Tail: -1}, func(e jsonlog.Entry) error { b.Write(e.Line); return nil }); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestRootRunExitCodeAndLogs(t *testing.T) {
	e := newRootEnv(t)
	m := e.open(t)
	defer e.removeAll(t, m)
	c, r := run(t, m, CreateOptions{Config: Config{Cmd: []string{"sh", "-c", "echo hi; hostname; exit 3"}}})
	if r.ExitCode != 3 {
		t.Fatalf("exit %+v", r)
	}
	if got := logText(t, m, c.ID); got != "hi\n"+c.ID[:12]+"\n" {
		t.Fatalf("logs %q", got)
	}
	g, _ := m.Get(c.ID)
	if g.State.Status != StatusExited || g.State.ExitCode != 3 || g.State.OOMKilled {
		t.Fatalf("state %+v", g.State)
	}
	// A missing executable fails at start with Docker's 127.
	bad, err := m.Create(rootCtx(t), CreateOptions{Config: Config{Image: "berth.test/busybox", Cmd: []string{"/nonexistent"}}})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Start(rootCtx(t), bad.ID)
	g, _ = m.Get(bad.ID)
	t.Logf("start of a missing executable: err=%v state=%+v", err, g.State)
	if err == nil {
		r := waitResult(t, must(m.Wait(rootCtx(t), bad.ID, WaitNotRunning)))
		if r.ExitCode == 0 {
			t.Fatalf("missing executable exited 0")
		}
	} else if g.State.ExitCode != 127 || g.State.Running {
		t.Fatalf("failed start state %+v", g.State)
	}
}

func TestRootStopGracePeriod(t *testing.T) {
	e := newRootEnv(t)
	m := e.open(t)
	defer e.removeAll(t, m)
	ctx := rootCtx(t)
	c, err := m.Create(ctx, CreateOptions{Config: Config{Image: "berth.test/busybox", Cmd: []string{"sh", "-c", `trap "" TERM; sleep 100 & wait`}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	grace := time.Second
	start := time.Now()
	if err := m.Stop(ctx, c.ID, &grace); err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	g, _ := m.Get(c.ID)
	if g.State.ExitCode != 137 || d < grace || d > grace+10*time.Second {
		t.Fatalf("stop after %v: %+v", d, g.State)
	}
}

func TestRootOOMKilled(t *testing.T) {
	e := newRootEnv(t)
	m := e.open(t)
	defer e.removeAll(t, m)
	events, unsub := m.Subscribe()
	defer unsub()
	c, r := run(t, m, CreateOptions{
		Config:     Config{Cmd: []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"}},
		HostConfig: HostConfig{Memory: 16 << 20, MemorySwap: 16 << 20},
	})
	g, _ := m.Get(c.ID)
	if r.ExitCode != 137 || !g.State.OOMKilled {
		t.Fatalf("memory hog: %+v, state %+v", r, g.State)
	}
	var actions []string
	for len(actions) < 4 {
		ev := <-events
		actions = append(actions, ev.Action)
	}
	if strings.Join(actions, ",") != "create,start,oom,die" {
		t.Fatalf("events %v", actions)
	}
}

func TestRootAgentRestart(t *testing.T) {
	e := newRootEnv(t)
	m := e.open(t)
	ctx := rootCtx(t)
	c, err := m.Create(ctx, CreateOptions{Config: Config{Image: "berth.test/busybox", Cmd: []string{"sleep", "100"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	g, _ := m.Get(c.ID)
	pid := g.State.Pid
	m.Close()
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("container died with the manager: %v", err)
	}
	m2 := e.open(t)
	g, err = m2.Get(c.ID)
	if err != nil || !g.State.Running || g.State.Pid != pid {
		t.Fatalf("after reopen: %+v, %v", g, err)
	}
	w := must(m2.Wait(ctx, c.ID, WaitNextExit))
	if err := m2.Kill(ctx, c.ID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if r := waitResult(t, w); r.ExitCode != 137 {
		t.Fatalf("exit after reopen: %+v", r)
	}

	// The container exits while no manager is open: its shim records the
	// exit, and the next manager finds it.
	if err := m2.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	g, _ = m2.Get(c.ID)
	m2.Close()
	if err := syscall.Kill(g.State.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(e.opts.Root, c.ID, shim.SocketFile)
	waitFor(t, func() bool { _, err := os.Stat(sock); return errors.Is(err, os.ErrNotExist) })
	m3 := e.open(t)
	defer e.removeAll(t, m3)
	g, _ = m3.Get(c.ID)
	if g.State.Running || g.State.ExitCode != 137 || g.State.Status != StatusExited {
		t.Fatalf("exit while away: %+v", g.State)
	}
}

func TestRootExecJoinsNamespaces(t *testing.T) {
	e := newRootEnv(t)
	m := e.open(t)
	defer e.removeAll(t, m)
	ctx := rootCtx(t)
	c, err := m.Create(ctx, CreateOptions{Config: Config{Image: "berth.test/busybox", Cmd: []string{"sleep", "100"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	g, _ := m.Get(c.ID)
	if pids, err := m.Pids(c.ID); err != nil || len(pids) != 1 || pids[0] != g.State.Pid {
		t.Fatalf("Pids = %v, %v; init is %d", pids, err, g.State.Pid)
	}
	if st, err := m.Stats(c.ID); err != nil || st.Pids < 1 || st.MemoryUsage == 0 { // Pids counts tasks: init may not have exec'd yet
		t.Fatalf("Stats = %+v, %v", st, err)
	}
	nss := []string{"mnt", "pid", "net", "uts", "ipc"}
	var want []string
	for _, ns := range nss {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", g.State.Pid, ns))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, l)
	}
	var out, errOut syncBuf
	script := "for n in " + strings.Join(nss, " ") + "; do readlink /proc/self/ns/$n; done; id -u; exit 5"
	ex, err := m.Exec(ctx, c.ID, ExecOptions{Cmd: []string{"sh", "-c", script}, User: "nobody", Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatal(err)
	}
	code, err := ex.Wait(ctx)
	if err != nil || code != 5 {
		t.Fatalf("exec exit %d %v (stderr %q)", code, err, errOut.String())
	}
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(got) != len(nss)+1 || strings.Join(got[:len(nss)], ",") != strings.Join(want, ",") || got[len(nss)] != "65534" {
		t.Fatalf("exec saw %q, init has %q", got, want)
	}
}

func TestRootTty(t *testing.T) {
	e := newRootEnv(t)
	m := e.open(t)
	defer e.removeAll(t, m)
	ctx := rootCtx(t)
	c, err := m.Create(ctx, CreateOptions{Config: Config{Image: "berth.test/busybox", Tty: true, OpenStdin: true,
		Cmd: []string{"sh", "-c", `test -t 0 && echo istty; read x; echo got:$x; exit 2`}}})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	var out syncBuf
	a, err := m.Attach(ctx, c.ID, AttachOptions{Stdin: pr, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	exited := must(m.Wait(ctx, c.ID, WaitNextExit))
	if err := m.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.Resize(ctx, c.ID, 30, 100); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(out.String(), "istty") })
	pw.Write([]byte("abc\n"))
	if err := a.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	waitResult(t, exited)
	g, _ := m.Get(c.ID)
	if g.State.ExitCode != 2 || !strings.Contains(out.String(), "got:abc") {
		t.Fatalf("tty run: %+v output %q", g.State, out.String())
	}
	// The log holds the terminal output as stdout.
	if l := logText(t, m, c.ID); !strings.Contains(l, "got:abc") {
		t.Fatalf("tty log %q", l)
	}
}

func TestRootLongLowerdir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	base, err := os.MkdirTemp("/var/tmp", "berth-ovl-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	var layers []string
	for i := 0; i < 60; i++ { // 60 × ~100 bytes: more than a page
		l := filepath.Join(base, "layers", fmt.Sprintf("%064x", i))
		if err := os.MkdirAll(l, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(l, fmt.Sprintf("f%d", i)), nil, 0o644)
		layers = append(layers, l)
	}
	upper, work, target := filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "rootfs")
	for _, d := range []string{upper, work, target} {
		os.Mkdir(d, 0o755)
	}
	mnt := newOverlayMounter()
	if err := mnt.Mount(layers, upper, work, target); err != nil {
		t.Fatal(err)
	}
	defer mnt.Unmount(target)
	if _, err := os.Stat(filepath.Join(target, "f59")); err != nil {
		t.Fatalf("bottom layer not visible: %v", err)
	}
	cwd, _ := os.Getwd()
	if cwd == filepath.Join(base, "layers") {
		t.Fatal("the process's working directory changed")
	}
	if err := mnt.Unmount(target); err != nil {
		t.Fatal(err)
	}
	if ok, _ := mnt.Mounted(target); ok {
		t.Fatal("still mounted")
	}
}

func TestRootRestartPolicyAndAutoRemove(t *testing.T) {
	e := newRootEnv(t)
	m := e.open(t)
	defer e.removeAll(t, m)
	ctx := rootCtx(t)
	c, err := m.Create(ctx, CreateOptions{Config: Config{Image: "berth.test/busybox", Cmd: []string{"sh", "-c", "echo run; exit 1"}},
		HostConfig: HostConfig{RestartPolicy: RestartPolicy{Name: "on-failure", MaximumRetryCount: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		g, _ := m.Get(c.ID)
		return g.State.Status == StatusExited && g.State.RestartCount == 2
	})
	if l := logText(t, m, c.ID); l != "run\nrun\nrun\n" {
		t.Fatalf("three runs logged %q", l)
	}
	// AutoRemove leaves nothing behind.
	rm, err := m.Create(ctx, CreateOptions{Config: Config{Image: "berth.test/busybox", Cmd: []string{"true"}}, HostConfig: HostConfig{AutoRemove: true}})
	if err != nil {
		t.Fatal(err)
	}
	gone := must(m.Wait(ctx, rm.ID, WaitRemoved))
	if err := m.Start(ctx, rm.ID); err != nil {
		t.Fatal(err)
	}
	waitResult(t, gone)
	assertNoLeaks(t, e, rm.ID)
}
