package container

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/guestagent/image"
	"github.com/berth-dev/berth/guestagent/runtime/jsonlog"
	"github.com/berth-dev/berth/guestagent/runtime/shim"
	"github.com/berth-dev/berth/guestagent/runtime/shim/shimtest"
)

// fakeImages knows one image, "test", whose config is given.
type fakeImages struct{ cfg ocispec.ImageConfig }

var testImageID = digest.FromString("test image")

func (f *fakeImages) Get(ctx context.Context, name string) (*image.Image, error) {
	if name != "test" && name != testImageID.String() {
		return nil, image.ErrNotFound
	}
	return &image.Image{ID: testImageID, Config: ocispec.Image{Config: f.cfg}}, nil
}

func (f *fakeImages) LayerDirs(ctx context.Context, id digest.Digest) ([]string, error) {
	if id != testImageID {
		return nil, image.ErrNotFound
	}
	return []string{"/layers/b", "/layers/a"}, nil
}

// fakeMounter records mounts; the target stays an empty directory.
type fakeMounter struct {
	mu      sync.Mutex
	mounted map[string][]string
}

func (f *fakeMounter) Mount(layers []string, upper, work, target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mounted == nil {
		f.mounted = map[string][]string{}
	}
	if _, ok := f.mounted[target]; ok {
		return errors.New("already mounted")
	}
	f.mounted[target] = layers
	return nil
}

func (f *fakeMounter) Unmount(target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.mounted, target)
	return nil
}

func (f *fakeMounter) Mounted(target string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.mounted[target]
	return ok, nil
}

func (f *fakeMounter) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.mounted)
}

// inprocLauncher runs shim servers as goroutines over a shimtest runtime:
// they outlive a Manager like real shims do.
type inprocLauncher struct {
	rt *shimtest.Runtime
	wg sync.WaitGroup
}

func (l *inprocLauncher) Launch(ctx context.Context, dir string) (int, error) {
	cfg, err := shim.ReadConfig(dir)
	if err != nil {
		return 0, err
	}
	logs, err := jsonlog.Create(cfg.LogPath)
	if err != nil {
		return 0, err
	}
	srv := &shim.Server{Config: *cfg, Runtime: l.rt, Logs: logs}
	type res struct {
		pid int
		err error
	}
	ready := make(chan res, 1)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		_, _ = srv.Run(context.Background(), func(pid int, err error) { ready <- res{pid, err} })
	}()
	r := <-ready
	return r.pid, r.err
}

type env struct {
	root     string
	images   *fakeImages
	mounter  *fakeMounter
	launcher *inprocLauncher
}

func newEnv(t *testing.T) *env {
	e := &env{root: t.TempDir(), images: &fakeImages{cfg: ocispec.ImageConfig{Cmd: []string{"true"}, Env: []string{"PATH=/usr/bin:/bin"}}},
		mounter: &fakeMounter{}, launcher: &inprocLauncher{rt: &shimtest.Runtime{}}}
	t.Cleanup(e.launcher.wg.Wait)
	return e
}

func (e *env) open(t *testing.T) *Manager {
	t.Helper()
	m, err := open(Options{Root: filepath.Join(e.root, "containers"), RunRoot: filepath.Join(e.root, "run")},
		deps{images: e.images, mounter: e.mounter, launcher: e.launcher})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// cleanup removes every container and closes m.
func cleanup(t *testing.T, m *Manager) {
	list, _ := m.List(ListOptions{All: true})
	for _, c := range list {
		if err := m.Remove(context.Background(), c.ID, true, false); err != nil && !errors.Is(err, ErrNotFound) {
			t.Errorf("remove %s: %v", c.ID, err)
		}
	}
	m.Close()
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func create(t *testing.T, m *Manager, name string, cmd ...string) *Container {
	t.Helper()
	c, err := m.Create(testCtx(t), CreateOptions{Name: name, Config: Config{Image: "test", Cmd: cmd}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func waitResult(t *testing.T, ch <-chan WaitResult) WaitResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("wait timed out")
	}
	return WaitResult{}
}

func TestRunExitCodeLogsAndEvents(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	defer cleanup(t, m)
	ctx := testCtx(t)
	events, unsub := m.Subscribe()
	defer unsub()
	c := create(t, m, "first", "sh", "-c", "echo hi; echo oops >&2; exit 3")
	if c.Name != "/first" || c.State.Status != StatusCreated || c.Path != "sh" || len(c.ID) != 64 {
		t.Fatalf("created %+v", c)
	}
	if e.mounter.count() != 1 {
		t.Fatal("rootfs not mounted at create")
	}
	for _, f := range []string{c.HostsPath, c.HostnamePath, c.ResolvConfPath, filepath.Join(e.root, "containers", c.ID, "bundle", "config.json")} {
		if _, err := os.Stat(f); err != nil {
			t.Fatal(err)
		}
	}
	// not-running on a created container answers at once.
	if r := waitResult(t, must(m.Wait(ctx, c.ID, WaitNotRunning))); r.ExitCode != 0 {
		t.Fatalf("wait created = %+v", r)
	}
	wait, err := m.Wait(ctx, "first", WaitNextExit)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, c.ID[:10]); err != nil {
		t.Fatal(err)
	}
	if r := waitResult(t, wait); r.ExitCode != 3 || r.Err != nil {
		t.Fatalf("wait = %+v", r)
	}
	got, _ := m.Get(c.ID)
	if got.State.Status != StatusExited || got.State.ExitCode != 3 || got.State.Running || got.State.FinishedAt.IsZero() || got.State.StartedAt.IsZero() {
		t.Fatalf("state %+v", got.State)
	}
	var out, errOut strings.Builder
	if err := m.Logs(ctx, c.ID, LogsOptions{Tail: -1}, func(en jsonlog.Entry) error {
		if en.Stream == "stdout" {
			out.Write(en.Line)
		} else {
			errOut.Write(en.Line)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "hi\n" || errOut.String() != "oops\n" {
		t.Fatalf("logs %q %q", out.String(), errOut.String())
	}
	var actions []string
	for len(actions) < 3 {
		select {
		case ev := <-events:
			actions = append(actions, ev.Action)
			if ev.Action == "die" && ev.Attributes["exitCode"] != "3" {
				t.Fatalf("die event %+v", ev)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("events so far %v", actions)
		}
	}
	if strings.Join(actions, ",") != "create,start,die" {
		t.Fatalf("events %v", actions)
	}
	// Stopping a stopped container is "not modified"; killing it is "not running".
	if err := m.Stop(ctx, c.ID, nil); !errors.Is(err, ErrNotModified) {
		t.Fatalf("stop stopped: %v", err)
	}
	if err := m.Kill(ctx, c.ID, 0); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("kill stopped: %v", err)
	}
	// A second start appends to the log.
	if err := m.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	waitResult(t, must(m.Wait(ctx, c.ID, WaitNotRunning)))
	waitFor(t, func() bool { g, _ := m.Get(c.ID); return !g.State.Running })
	n := 0
	m.Logs(ctx, c.ID, LogsOptions{Tail: -1, Stdout: true}, func(jsonlog.Entry) error { n++; return nil })
	if n != 2 {
		t.Fatalf("%d stdout entries after two runs, want 2", n)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNamesAndLookup(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	defer cleanup(t, m)
	ctx := testCtx(t)
	a := create(t, m, "/web", "true")
	if _, err := m.Create(ctx, CreateOptions{Name: "web", Config: Config{Image: "test"}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate name: %v", err)
	}
	if _, err := m.Create(ctx, CreateOptions{Name: "-bad", Config: Config{Image: "test"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := m.Create(ctx, CreateOptions{Config: Config{Image: "nope"}}); !errors.Is(err, ErrNotFound) || !errors.Is(err, image.ErrNotFound) {
		t.Fatalf("missing image: %v", err)
	}
	if _, err := m.Create(ctx, CreateOptions{Config: Config{Image: "test"}, HostConfig: HostConfig{AutoRemove: true, RestartPolicy: RestartPolicy{Name: "always"}}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("--rm with --restart: %v", err)
	}
	if !m.ImageInUse(testImageID) || m.ImageInUse(digest.FromString("other")) {
		t.Fatal("ImageInUse")
	}
	gen := create(t, m, "", "true")
	if !validName.MatchString(gen.Name) || !strings.Contains(gen.Name, "_") {
		t.Fatalf("generated name %q", gen.Name)
	}
	for _, ref := range []string{a.ID, "web", "/web", a.ID[:6]} {
		if c, err := m.Get(ref); err != nil || c.ID != a.ID {
			t.Fatalf("Get(%q) = %v, %v", ref, c, err)
		}
	}
	if _, err := m.Get("zzz"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	// Ambiguous prefix: make a container whose ID shares a's first digit.
	m.mu.Lock()
	fakeID := a.ID[:1] + strings.Repeat("0", 63)
	m.byID[fakeID] = &ctr{rec: &Container{ID: fakeID, Name: "/x"}, changed: make(chan struct{})}
	m.mu.Unlock()
	if _, err := m.Get(a.ID[:1]); !errors.Is(err, ErrAmbiguous) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("ambiguous: %v", err)
	}
	m.mu.Lock()
	delete(m.byID, fakeID)
	m.mu.Unlock()
	if err := m.Rename("web", "other"); err != nil {
		t.Fatal(err)
	}
	if err := m.Rename("other", gen.Name); !errors.Is(err, ErrConflict) {
		t.Fatalf("rename onto a used name: %v", err)
	}
	if _, err := m.Get("web"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old name still resolves: %v", err)
	}
	if err := m.Rename("other", "web"); err != nil {
		t.Fatal(err)
	}
	// The name is free again after remove.
	if err := m.Remove(ctx, "web", false, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.root, "containers", a.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("container dir left: %v", err)
	}
	create(t, m, "web", "true")
}

func TestStopGraceAndKill(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	defer cleanup(t, m)
	ctx := testCtx(t)
	polite := create(t, m, "polite", "sleep", "100")
	stubborn := create(t, m, "stubborn", "sh", "-c", `trap "" TERM; sleep 100`)
	for _, c := range []*Container{polite, stubborn} {
		if err := m.Start(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Start(ctx, polite.ID); !errors.Is(err, ErrNotModified) {
		t.Fatalf("start running: %v", err)
	}
	if got, _ := m.Get(polite.ID); !got.State.Running || got.State.Pid == 0 || got.State.Status != StatusRunning {
		t.Fatalf("running state %+v", got.State)
	}
	if l, _ := m.List(ListOptions{}); len(l) != 2 {
		t.Fatalf("list running: %d", len(l))
	}
	start := time.Now()
	if err := m.Stop(ctx, polite.ID, nil); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("SIGTERM stop took %v", time.Since(start))
	}
	if got, _ := m.Get(polite.ID); got.State.ExitCode != 143 || got.State.Status != StatusExited {
		t.Fatalf("polite state %+v", got.State)
	}
	grace := 300 * time.Millisecond
	start = time.Now()
	if err := m.Stop(ctx, stubborn.ID, &grace); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < grace {
		t.Fatalf("stop returned after %v, before the grace period", d)
	}
	if got, _ := m.Get(stubborn.ID); got.State.ExitCode != 137 {
		t.Fatalf("stubborn state %+v", got.State)
	}
	// Kill with a signal.
	k := create(t, m, "killme", "sleep", "100")
	m.Start(ctx, k.ID)
	w := must(m.Wait(ctx, k.ID, ""))
	if err := m.Kill(ctx, k.ID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if r := waitResult(t, w); r.ExitCode != 128+int(syscall.SIGUSR1) {
		t.Fatalf("kill USR1 exit %+v", r)
	}
	// Filters.
	l, err := m.List(ListOptions{All: true, Filters: map[string][]string{"status": {"exited"}, "name": {"po"}}})
	if err != nil || len(l) != 1 || l[0].ID != polite.ID {
		t.Fatalf("filtered list %v %v", l, err)
	}
	if _, err := m.List(ListOptions{Filters: map[string][]string{"bogus": {"x"}}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad filter: %v", err)
	}
}

func TestRestartPolicyOnFailure(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	defer cleanup(t, m)
	ctx := testCtx(t)
	c, err := m.Create(ctx, CreateOptions{Config: Config{Image: "test", Cmd: []string{"sh", "-c", "exit 1"}},
		HostConfig: HostConfig{RestartPolicy: RestartPolicy{Name: "on-failure", MaximumRetryCount: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	events, unsub := m.Subscribe()
	defer unsub()
	if err := m.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	dies := 0
	for dies < 3 {
		select {
		case ev := <-events:
			if ev.Action == "die" {
				dies++
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d die events", dies)
		}
	}
	waitFor(t, func() bool {
		g, _ := m.Get(c.ID)
		return g.State.Status == StatusExited
	})
	g, _ := m.Get(c.ID)
	if g.State.RestartCount != 2 || g.State.ExitCode != 1 {
		t.Fatalf("state %+v", g.State)
	}
}

func TestRestartPolicyAlwaysStop(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	defer cleanup(t, m)
	ctx := testCtx(t)
	c, err := m.Create(ctx, CreateOptions{Config: Config{Image: "test", Cmd: []string{"true"}},
		HostConfig: HostConfig{RestartPolicy: RestartPolicy{Name: "always"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { g, _ := m.Get(c.ID); return g.State.RestartCount >= 2 })
	// Stop ends the restarting for good.
	if err := m.Stop(ctx, c.ID, nil); err != nil && !errors.Is(err, ErrNotModified) {
		t.Fatal(err)
	}
	waitFor(t, func() bool { g, _ := m.Get(c.ID); return g.State.Status == StatusExited })
	g1, _ := m.Get(c.ID)
	time.Sleep(500 * time.Millisecond) // longer than the backoff: no restart may follow
	g2, _ := m.Get(c.ID)
	if g2.State.RestartCount != g1.State.RestartCount || g2.State.Status != StatusExited {
		t.Fatalf("restarted after stop: %+v → %+v", g1.State, g2.State)
	}
}

func TestAutoRemoveAndForceRemove(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	defer cleanup(t, m)
	ctx := testCtx(t)
	c, err := m.Create(ctx, CreateOptions{Config: Config{Image: "test", Cmd: []string{"true"}}, HostConfig: HostConfig{AutoRemove: true}})
	if err != nil {
		t.Fatal(err)
	}
	removed := must(m.Wait(ctx, c.ID, WaitRemoved))
	if err := m.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	waitResult(t, removed)
	if _, err := m.Get(c.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("auto-removed container still there: %v", err)
	}
	r := create(t, m, "", "sleep", "100")
	m.Start(ctx, r.ID)
	if err := m.Remove(ctx, r.ID, false, false); !errors.Is(err, ErrConflict) {
		t.Fatalf("remove running: %v", err)
	}
	if err := m.Remove(ctx, r.ID, true, false); err != nil {
		t.Fatal(err)
	}
	if n := e.mounter.count(); n != 0 {
		t.Fatalf("%d mounts left", n)
	}
	if e.launcher.rt.Running(r.ID) {
		t.Fatal("runtime still has the container")
	}
}

func TestAttachBeforeStartAndExec(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	defer cleanup(t, m)
	ctx := testCtx(t)
	c, err := m.Create(ctx, CreateOptions{Config: Config{Image: "test", Cmd: []string{"cat"}, OpenStdin: true, StdinOnce: true}})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	var out syncBuf
	a, err := m.Attach(ctx, c.ID, AttachOptions{Stdin: pr, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	pw.Write([]byte("echoed\n"))
	waitFor(t, func() bool { return out.String() == "echoed\n" })

	var eo syncBuf
	ex, err := m.Exec(ctx, c.ID, ExecOptions{Cmd: []string{"sh", "-c", "echo exec; exit 4"}, Stdout: &eo})
	if err != nil {
		t.Fatal(err)
	}
	code, err := ex.Wait(ctx)
	if err != nil || code != 4 || eo.String() != "exec\n" {
		t.Fatalf("exec = %d %v %q", code, err, eo.String())
	}
	if _, err := m.Exec(ctx, c.ID, ExecOptions{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("exec without cmd: %v", err)
	}
	// StdinOnce: closing the attached stdin ends cat.
	pw.Close()
	if err := a.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { g, _ := m.Get(c.ID); return g.State.Status == StatusExited })
	if _, err := m.Exec(ctx, c.ID, ExecOptions{Cmd: []string{"true"}}); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("exec in stopped container: %v", err)
	}
}

func TestRestoreAfterAgentRestart(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	ctx := testCtx(t)
	stay := create(t, m, "stay", "sleep", "100")
	away := create(t, m, "away", "sleep", "100")
	create(t, m, "idle", "true")
	for _, c := range []*Container{stay, away} {
		if err := m.Start(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
	}
	m.Close()

	// While the agent is away, "away" is killed: its shim records the exit.
	if err := (&shim.Client{Dir: filepath.Join(e.root, "containers", away.ID)}).Kill(ctx, syscall.SIGKILL, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, err := shim.ReadExit(filepath.Join(e.root, "containers", away.ID)); return err == nil })
	waitFor(t, func() bool { return !e.launcher.rt.Running(away.ID) })

	m2 := e.open(t)
	g, err := m2.Get("stay")
	if err != nil || !g.State.Running || g.State.Pid == 0 {
		t.Fatalf("stay after restart: %+v %v", g, err)
	}
	g, _ = m2.Get("away")
	if g.State.Running || g.State.ExitCode != 137 || g.State.Status != StatusExited {
		t.Fatalf("away after restart: %+v", g.State)
	}
	g, _ = m2.Get("idle")
	if g.State.Status != StatusCreated || g.Config.Cmd[0] != "true" {
		t.Fatalf("idle after restart: %+v", g)
	}
	// The reconnected container's exit is still noticed.
	w := must(m2.Wait(ctx, "stay", WaitNextExit))
	if err := m2.Kill(ctx, "stay", syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if r := waitResult(t, w); r.ExitCode != 143 {
		t.Fatalf("stay exit %+v", r)
	}
	m2.Close()
	// And persisted.
	m3 := e.open(t)
	defer cleanup(t, m3)
	g, _ = m3.Get("stay")
	if g.State.ExitCode != 143 || g.State.Running {
		t.Fatalf("stay after second restart: %+v", g.State)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestLogsFollowEndsAtExit(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	defer cleanup(t, m)
	ctx := testCtx(t)
	c, err := m.Create(ctx, CreateOptions{Config: Config{Image: "test", Cmd: []string{"sh", "-c", "echo a; read x; echo b"}, OpenStdin: true}})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	if _, err := m.Attach(ctx, c.ID, AttachOptions{Stdin: pr}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 4)
	done := make(chan error, 1)
	go func() {
		done <- m.Logs(ctx, c.ID, LogsOptions{Tail: -1, Follow: true}, func(en jsonlog.Entry) error {
			got <- string(en.Line)
			return nil
		})
	}()
	if l := <-got; l != "a\n" {
		t.Fatalf("first line %q", l)
	}
	pw.Write([]byte("go\n"))
	if l := <-got; l != "b\n" {
		t.Fatalf("second line %q", l)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end when the container stopped")
	}
}

func TestExecTty(t *testing.T) {
	e := newEnv(t)
	m := e.open(t)
	defer cleanup(t, m)
	ctx := testCtx(t)
	c := create(t, m, "ttyexec", "sleep", "100")
	if err := m.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	var out syncBuf
	pr, pw := io.Pipe()
	defer pw.Close()
	ex, err := m.Exec(ctx, c.ID, ExecOptions{Cmd: []string{"sh", "-c", "test -t 0 && echo tty; read x; stty size; exit 6"}, Tty: true, Stdin: pr, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(out.String(), "tty") })
	if err := ex.Resize(40, 120); err != nil {
		t.Fatal(err)
	}
	pw.Write([]byte("x\n"))
	code, err := ex.Wait(ctx)
	if err != nil || code != 6 || !strings.Contains(out.String(), "40 120") {
		t.Fatalf("tty exec: %d %v %q", code, err, out.String())
	}
}
