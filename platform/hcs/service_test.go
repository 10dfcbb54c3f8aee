package hcs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/guestagent/runtime/container"
	"github.com/berth-dev/berth/guestagent/runtime/jsonlog"
)

// fakeRuntime stands in for HCS and HNS: it records what the Service asks for and runs fake tasks.
type fakeRuntime struct {
	mu        sync.Mutex
	calls     []string
	docs      []ContainerDocument
	procs     []ProcessConfig
	endpoints map[string][]NatPolicy
	nextPort  uint16
	runErr    error
	tasks     []*fakeTask
}

func (f *fakeRuntime) lastTask() *fakeTask {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tasks[len(f.tasks)-1]
}

func (f *fakeRuntime) call(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeRuntime) callsFor(id string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, strings.ReplaceAll(c, id, "ID"))
	}
	return out
}

func (f *fakeRuntime) PrepareStorage(id string, layers []string) (Storage, error) {
	f.call("prepare %s %s", id, strings.Join(layers, ","))
	var ls []Layer
	for i, p := range layers {
		ls = append(ls, Layer{ID: fmt.Sprintf("guid-%d", i), Path: p})
	}
	return Storage{ScratchFolder: `C:\scratch\` + id[:12], VolumePath: `\\?\Volume{x}\`, Layers: ls}, nil
}
func (f *fakeRuntime) ReleaseStorage(id string) error { f.call("release %s", id); return nil }
func (f *fakeRuntime) DestroyStorage(id string) error { f.call("destroy %s", id); return nil }
func (f *fakeRuntime) CreateEndpoint(id string, p []NatPolicy) (string, error) {
	f.call("endpoint %s %d", id, len(p))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.endpoints == nil {
		f.endpoints = map[string][]NatPolicy{}
	}
	f.endpoints["ep-"+id[:4]] = p
	return "ep-" + id[:4], nil
}
func (f *fakeRuntime) DeleteEndpoint(ep string) error { f.call("delete-endpoint %s", ep); return nil }
func (f *fakeRuntime) AllocatePort(proto string) (uint16, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextPort++
	return 40000 + f.nextPort, nil
}

func (f *fakeRuntime) Run(doc ContainerDocument, proc ProcessConfig) (Task, error) {
	f.call("run %s", doc.Name)
	f.mu.Lock()
	f.docs = append(f.docs, doc)
	f.procs = append(f.procs, proc)
	err := f.runErr
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	t := &fakeTask{}
	t.fakeProc = startFakeProc(proc, 1234)
	f.mu.Lock()
	f.tasks = append(f.tasks, t)
	f.mu.Unlock()
	return t, nil
}

// fakeProc is a process of the fake runtime. Its command line is a tiny script:
//
//	cat         copy stdin to stdout until stdin ends, exit 0
//	echo WORDS  print WORDS to stdout, exit 0
//	fail N      print "failing" to stderr, exit N
//	sleep       wait to be killed
//	(else)      print "hello from LINE" to stdout and "a warning" to stderr, then exit 3 if LINE contains
//	            exit3, else wait to be stopped
//
// With a console (EmulateConsole) stderr goes to stdout, as on Windows.
type fakeProc struct {
	cfg            ProcessConfig
	pid            int
	stdin          io.WriteCloser
	stdinR         *io.PipeReader
	stdout, stderr io.Reader
	exit           chan int
	once           sync.Once
	done           chan struct{}
	code           int

	mu     sync.Mutex
	sizes  [][2]uint16
	killed bool
	closed bool
}

func startFakeProc(cfg ProcessConfig, pid int) *fakeProc {
	p := &fakeProc{cfg: cfg, pid: pid, exit: make(chan int, 1), done: make(chan struct{})}
	outW, errW := io.Discard, io.Discard
	var closers []io.Closer
	if cfg.CreateStdInPipe {
		var w *io.PipeWriter
		p.stdinR, w = io.Pipe()
		p.stdin = w
	}
	if cfg.CreateStdOutPipe {
		r, w := io.Pipe()
		p.stdout, outW = r, w
		closers = append(closers, w)
	}
	if cfg.CreateStdErrPipe && !cfg.EmulateConsole {
		r, w := io.Pipe()
		p.stderr, errW = r, w
		closers = append(closers, w)
	}
	if cfg.EmulateConsole {
		errW = outW
	}
	cmd, rest, _ := strings.Cut(cfg.CommandLine, " ")
	go func() {
		switch cmd {
		case "cat":
			if p.stdinR != nil {
				io.Copy(outW, p.stdinR)
			}
			p.end(0)
		case "echo":
			fmt.Fprintln(outW, rest)
			p.end(0)
		case "fail":
			n, _ := strconv.Atoi(rest)
			fmt.Fprintln(errW, "failing")
			p.end(n)
		case "sleep":
		default:
			fmt.Fprintf(outW, "hello from %s\n", cfg.CommandLine)
			fmt.Fprintln(errW, "a warning")
			if strings.Contains(cfg.CommandLine, "exit3") {
				p.end(3)
			}
		}
	}()
	go func() {
		// Ending the process closes its pipes, which ends a script still reading or writing them.
		p.code = <-p.exit
		for _, c := range closers {
			c.Close()
		}
		if p.stdinR != nil {
			p.stdinR.Close()
		}
		close(p.done)
	}()
	return p
}

func (p *fakeProc) end(code int) { p.once.Do(func() { p.exit <- code }) }
func (p *fakeProc) Pid() int     { return p.pid }
func (p *fakeProc) Wait() (int, error) {
	<-p.done
	return p.code, nil
}
func (p *fakeProc) Stdio() (io.WriteCloser, io.Reader, io.Reader) { return p.stdin, p.stdout, p.stderr }
func (p *fakeProc) Resize(h, w uint16) error {
	if !p.cfg.EmulateConsole {
		return errors.New("fake: no console")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sizes = append(p.sizes, [2]uint16{h, w})
	return nil
}
func (p *fakeProc) Kill() error {
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	p.end(137)
	return nil
}
func (p *fakeProc) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	return nil
}
func (p *fakeProc) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}
func (p *fakeProc) resized() [][2]uint16 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sizes)
}

// fakeTask is a compute system: its first process and the ones Exec started.
type fakeTask struct {
	*fakeProc
	mu      sync.Mutex
	execs   []*fakeProc
	stopped bool
}

func (t *fakeTask) Shutdown(time.Duration) error { t.stop(0); return nil }
func (t *fakeTask) Terminate() error             { t.stop(1); return nil }

// stop ends the first process and every exec, as ending a compute system does.
func (t *fakeTask) stop(code int) {
	t.mu.Lock()
	t.stopped = true
	execs := slices.Clone(t.execs)
	t.mu.Unlock()
	t.end(code)
	for _, e := range execs {
		e.end(137)
	}
}

func (t *fakeTask) Exec(cfg ProcessConfig) (Process, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return nil, errors.New("fake: compute system stopped")
	}
	p := startFakeProc(cfg, 2000+len(t.execs))
	t.execs = append(t.execs, p)
	return p, nil
}

func (t *fakeTask) lastExec() *fakeProc {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.execs[len(t.execs)-1]
}

type fakeImages struct{}

func (fakeImages) Resolve(_ context.Context, ref string) (ResolvedImage, error) {
	if ref != "nanoserver" {
		return ResolvedImage{}, fmt.Errorf("%w: %s", container.ErrNotFound, ref)
	}
	return ResolvedImage{ID: "sha256:abc", Config: ImageConfig{Cmd: []string{"cmd"}, Env: []string{"A=1"}}, LayerFolders: []string{`C:\l\top`, `C:\l\base`}}, nil
}

func newTestService(t *testing.T) (*Service, *fakeRuntime) {
	t.Helper()
	rt := &fakeRuntime{}
	s, err := NewService(ServiceConfig{Root: t.TempDir(), Images: fakeImages{}, HostCPUs: 2}, rt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, rt
}

func waitExit(t *testing.T, s *Service, id, cond string) container.WaitResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, err := s.Wait(ctx, id, cond)
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	return r
}

func TestServiceRunToExit(t *testing.T) {
	s, rt := newTestService(t)
	ctx := context.Background()
	events, stop := s.Subscribe()
	defer stop()
	c, err := s.Create(ctx, container.CreateOptions{
		Name:       "web",
		Config:     container.Config{Image: "nanoserver", Cmd: []string{"app.exe", "exit3"}},
		HostConfig: container.HostConfig{PortBindings: map[string][]container.PortBinding{"80/tcp": {{HostPort: ""}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "/web" || c.State.Status != container.StatusCreated || c.Path != "app.exe" {
		t.Fatalf("created %+v", c)
	}
	if _, err := s.Create(ctx, container.CreateOptions{Name: "web", Config: container.Config{Image: "nanoserver"}}); !errors.Is(err, container.ErrConflict) {
		t.Fatalf("duplicate name: %v", err)
	}
	if err := s.Start(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if r := waitExit(t, s, c.ID, container.WaitNotRunning); r.ExitCode != 3 {
		t.Fatalf("exit %+v", r)
	}
	got, _ := s.Get(c.ID[:8])
	if got.State.Status != container.StatusExited || got.State.ExitCode != 3 || got.State.Running {
		t.Fatalf("state after exit %+v", got.State)
	}
	var lines []string
	if err := s.Logs(ctx, "web", container.LogsOptions{Tail: -1}, func(e jsonlog.Entry) error {
		lines = append(lines, e.Stream+": "+string(e.Line))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(lines)
	if want := []string{"stderr: a warning\n", "stdout: hello from app.exe exit3\n"}; !slices.Equal(lines, want) {
		t.Errorf("logs %q, want %q", lines, want)
	}
	// The run set up and tore down storage and the endpoint; the document had both.
	want := []string{"prepare ID C:\\l\\top,C:\\l\\base", "endpoint ID 1", "run ID", "delete-endpoint ep-" + c.ID[:4], "release ID"}
	if calls := rt.callsFor(c.ID); !slices.Equal(calls, want) {
		t.Errorf("runtime calls %q, want %q", calls, want)
	}
	doc := rt.docs[0]
	if !slices.Equal(doc.EndpointList, []string{"ep-" + c.ID[:4]}) || len(doc.Layers) != 2 || doc.Layers[0].Path != `C:\l\top` {
		t.Errorf("document %+v", doc)
	}
	if p := rt.endpoints["ep-"+c.ID[:4]]; len(p) != 1 || p[0].InternalPort != 80 || p[0].ExternalPort != 40001 {
		t.Errorf("policies %+v", p)
	}
	var actions []string
	for len(actions) < 3 {
		select {
		case ev := <-events:
			actions = append(actions, ev.Action)
		case <-time.After(5 * time.Second):
			t.Fatalf("events so far %q", actions)
		}
	}
	if !slices.Equal(actions, []string{"create", "start", "die"}) {
		t.Errorf("events %q", actions)
	}
}

func TestServiceStopStartRemove(t *testing.T) {
	s, rt := newTestService(t)
	ctx := context.Background()
	c, err := s.Create(ctx, container.CreateOptions{Config: container.Config{Image: "nanoserver"}, HostConfig: container.HostConfig{NetworkMode: "none"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, c.ID); !errors.Is(err, container.ErrNotModified) {
		t.Fatalf("second start: %v", err)
	}
	if l, _ := s.List(container.ListOptions{}); len(l) != 1 || !l[0].State.Running {
		t.Fatalf("list running: %+v", l)
	}
	if err := s.Remove(ctx, c.ID, false, false); !errors.Is(err, container.ErrConflict) {
		t.Fatalf("remove running: %v", err)
	}
	zero := time.Duration(0)
	if err := s.Stop(ctx, c.ID, &zero); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(ctx, c.ID, &zero); !errors.Is(err, container.ErrNotModified) {
		t.Fatalf("second stop: %v", err)
	}
	if l, _ := s.List(container.ListOptions{}); len(l) != 0 {
		t.Fatalf("list after stop: %+v", l)
	}
	if l, _ := s.List(container.ListOptions{All: true, Filters: map[string][]string{"status": {"exited"}}}); len(l) != 1 {
		t.Fatalf("list exited: %+v", l)
	}
	if _, err := s.List(container.ListOptions{Filters: map[string][]string{"bogus": {"x"}}}); !errors.Is(err, container.ErrInvalid) {
		t.Fatalf("bad filter: %v", err)
	}
	if err := s.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	removed, err := s.Wait(ctx, c.ID, container.WaitRemoved)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, c.ID, true, false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-removed:
	case <-time.After(5 * time.Second):
		t.Fatal("wait removed did not return")
	}
	if _, err := s.Get(c.ID); !errors.Is(err, container.ErrNotFound) {
		t.Fatalf("get removed: %v", err)
	}
	calls := rt.callsFor(c.ID)
	if slices.Contains(calls, "endpoint ID 0") || calls[len(calls)-1] != "destroy ID" {
		t.Errorf("network none must not create endpoints; remove must destroy storage: %q", calls)
	}
}

func TestServiceStartFailureUndoes(t *testing.T) {
	s, rt := newTestService(t)
	ctx := context.Background()
	c, err := s.Create(ctx, container.CreateOptions{Config: container.Config{Image: "nanoserver"}})
	if err != nil {
		t.Fatal(err)
	}
	rt.runErr = errors.New("hcs: the operation failed")
	if err := s.Start(ctx, c.ID); err == nil || !strings.Contains(err.Error(), "operation failed") {
		t.Fatalf("start: %v", err)
	}
	want := []string{"prepare ID C:\\l\\top,C:\\l\\base", "endpoint ID 0", "run ID", "delete-endpoint ep-" + c.ID[:4], "release ID"}
	if calls := rt.callsFor(c.ID); !slices.Equal(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}
	got, _ := s.Get(c.ID)
	if got.State.Running || got.State.Error == "" {
		t.Errorf("state %+v", got.State)
	}
}

func TestServiceRejects(t *testing.T) {
	s, _ := newTestService(t)
	ctx := context.Background()
	for name, opts := range map[string]container.CreateOptions{
		"unknown image": {Config: container.Config{Image: "nope"}},
		"bad bind":      {Config: container.Config{Image: "nanoserver"}, HostConfig: container.HostConfig{Binds: []string{`C:..\x:C:\y`}}},
		"bad port":      {Config: container.Config{Image: "nanoserver"}, HostConfig: container.HostConfig{PortBindings: map[string][]container.PortBinding{"80/sctp": {{}}}}},
		"host network":  {Config: container.Config{Image: "nanoserver"}, HostConfig: container.HostConfig{NetworkMode: "host"}},
	} {
		if _, err := s.Create(ctx, opts); err == nil {
			t.Errorf("%s: created", name)
		}
	}
	c, err := s.Create(ctx, container.CreateOptions{Config: container.Config{Image: "nanoserver"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Exec(ctx, c.ID, container.ExecOptions{}); !errors.Is(err, container.ErrInvalid) {
		t.Errorf("exec without a command: %v", err)
	}
	if _, err := s.Exec(ctx, c.ID, container.ExecOptions{Cmd: []string{"echo", "hi"}}); !errors.Is(err, container.ErrNotRunning) {
		t.Errorf("exec in a created container: %v", err)
	}
	if err := s.Kill(ctx, c.ID, 9); !errors.Is(err, container.ErrConflict) {
		t.Errorf("kill of a created container: %v", err)
	}
}
