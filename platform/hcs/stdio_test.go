package hcs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/guestagent/runtime/container"
	"github.com/berth-dev/berth/guestagent/runtime/jsonlog"
)

// syncBuf is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or 10 s have passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func createStarted(t *testing.T, s *Service, cfg container.Config) *container.Container {
	t.Helper()
	c, err := s.Create(testCtx(t), container.CreateOptions{Config: cfg, HostConfig: container.HostConfig{NetworkMode: "none"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(testCtx(t), c.ID); err != nil {
		t.Fatal(err)
	}
	return c
}

func running(t *testing.T, s *Service, id string) bool {
	t.Helper()
	c, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return c.State.Running
}

// docker run -i: attach before the start, input flows in, the output out, and the end of the client's
// input ends the container's (StdinOnce), which ends the attachment.
func TestAttachBeforeStart(t *testing.T) {
	s, rt := newTestService(t)
	ctx := testCtx(t)
	c, err := s.Create(ctx, container.CreateOptions{Config: container.Config{Image: "nanoserver", Cmd: []string{"cat"}, OpenStdin: true, StdinOnce: true}})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	var out syncBuf
	a, err := s.Attach(ctx, c.ID, container.AttachOptions{Stdin: pr, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if p := rt.procs[0]; !p.CreateStdInPipe || !p.CreateStdOutPipe || !p.CreateStdErrPipe || p.EmulateConsole {
		t.Errorf("first process config %+v", p)
	}
	if _, err := pw.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "echoed input", func() bool { return out.String() == "ping\n" })
	pw.Close()
	if err := a.Wait(ctx); err != nil {
		t.Fatalf("attachment: %v", err)
	}
	select {
	case <-a.Done():
	default:
		t.Fatal("Done not closed after Wait")
	}
	if r := waitExit(t, s, c.ID, container.WaitNotRunning); r.ExitCode != 0 {
		t.Fatalf("exit %+v", r)
	}
	var logged []string
	if err := s.Logs(ctx, c.ID, container.LogsOptions{Tail: -1}, func(e jsonlog.Entry) error {
		logged = append(logged, e.Stream+": "+string(e.Line))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(logged, []string{"stdout: ping\n"}) {
		t.Errorf("log %q", logged)
	}
}

// Two attachers both see the output; closing one (or its input ending, without StdinOnce) leaves the
// container running and the other attached; stopping the container ends the remaining attachment.
func TestTwoAttachers(t *testing.T) {
	s, _ := newTestService(t)
	ctx := testCtx(t)
	c := createStarted(t, s, container.Config{Image: "nanoserver", Cmd: []string{"cat"}, OpenStdin: true})
	inA, wA := io.Pipe()
	var outA, outB syncBuf
	a, err := s.Attach(ctx, c.ID, container.AttachOptions{Stdin: inA, Stdout: &outA, Stderr: &outA})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Attach(ctx, c.ID, container.AttachOptions{Stdout: &outB})
	if err != nil {
		t.Fatal(err)
	}
	wA.Write([]byte("one\n"))
	waitFor(t, "both attachers see the output", func() bool { return outA.String() == "one\n" && outB.String() == "one\n" })

	// The end of A's input does not end the container's (no StdinOnce); detaching A leaves it running.
	wA.Close()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(ctx); err != nil {
		t.Fatalf("closed attachment: %v", err)
	}
	if !running(t, s, c.ID) {
		t.Fatal("closing an attachment stopped the container")
	}
	inC, wC := io.Pipe()
	cAtt, err := s.Attach(ctx, c.ID, container.AttachOptions{Stdin: inC})
	if err != nil {
		t.Fatal(err)
	}
	wC.Write([]byte("two\n"))
	waitFor(t, "B sees C's input", func() bool { return outB.String() == "one\ntwo\n" })
	if outA.String() != "one\n" {
		t.Errorf("a detached attacher got %q", outA.String())
	}
	select {
	case <-b.Done():
		t.Fatal("B ended while the container runs")
	default:
	}
	zero := time.Duration(0)
	if err := s.Stop(ctx, c.ID, &zero); err != nil {
		t.Fatal(err)
	}
	for _, att := range []container.AttachSession{b, cAtt} {
		if err := att.Wait(ctx); err != nil {
			t.Errorf("attachment after stop: %v", err)
		}
	}
	wC.Close()
}

// A client that fails or cannot keep up is dropped; the container and the other attachers go on.
func TestAttachFailingAndSlowClients(t *testing.T) {
	s, _ := newTestService(t)
	ctx := testCtx(t)
	c := createStarted(t, s, container.Config{Image: "nanoserver", Cmd: []string{"cat"}, OpenStdin: true})
	in, w := io.Pipe()
	defer w.Close()
	var good syncBuf
	if _, err := s.Attach(ctx, c.ID, container.AttachOptions{Stdin: in, Stdout: &good}); err != nil {
		t.Fatal(err)
	}
	failing, err := s.Attach(ctx, c.ID, container.AttachOptions{Stdout: failWriter{}})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("x"))
	if err := failing.Wait(ctx); err == nil || !strings.Contains(err.Error(), "client gone") {
		t.Errorf("failing client: %v", err)
	}
	block := make(chan struct{})
	defer close(block)
	slow, err := s.Attach(ctx, c.ID, container.AttachOptions{Stdout: blockWriter(block)})
	if err != nil {
		t.Fatal(err)
	}
	// Tiny writes are merged while a client lags; bytes, not chunks, count.
	for range 1000 {
		if _, err := w.Write([]byte("a")); err != nil {
			t.Fatal(err)
		}
	}
	piece := bytes.Repeat([]byte("b"), 32<<10)
	const pieces = attachLag/(32<<10) + 2
	for range pieces {
		if _, err := w.Write(piece); err != nil {
			t.Fatal(err)
		}
	}
	n := 1 + 1000 + pieces*len(piece)
	waitFor(t, "all output at the good attacher", func() bool { return len(good.String()) == n })
	if err := slow.Wait(ctx); !errors.Is(err, errSlowClient) {
		t.Errorf("slow client: %v", err)
	}
	if !running(t, s, c.ID) {
		t.Error("the container stopped")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("client gone") }

type blockWriter chan struct{}

func (b blockWriter) Write(p []byte) (int, error) {
	<-b
	return len(p), nil
}

// Attaching to a removed container fails; a pending attacher ends when its container is removed.
func TestAttachRemoved(t *testing.T) {
	s, _ := newTestService(t)
	ctx := testCtx(t)
	c, err := s.Create(ctx, container.CreateOptions{Config: container.Config{Image: "nanoserver"}})
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuf
	a, err := s.Attach(ctx, c.ID, container.AttachOptions{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, c.ID, false, false); err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(ctx); err != nil {
		t.Fatalf("pending attachment after remove: %v", err)
	}
	if _, err := s.Attach(ctx, c.ID, container.AttachOptions{Stdout: &out}); !errors.Is(err, container.ErrNotFound) {
		t.Fatalf("attach to a removed container: %v", err)
	}
}

func TestExec(t *testing.T) {
	s, rt := newTestService(t)
	ctx := testCtx(t)
	c := createStarted(t, s, container.Config{Image: "nanoserver", Cmd: []string{"server.exe"}, Env: []string{"B=2"}, User: "ContainerUser", WorkingDir: `C:\app`})
	events, stop := s.Subscribe()
	defer stop()

	var out, errOut syncBuf
	ex, err := s.Exec(ctx, c.ID, container.ExecOptions{Cmd: []string{"echo", "hi there"}, Env: []string{"a=3"}, Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatal(err)
	}
	code, err := ex.Wait(ctx)
	if err != nil || code != 0 || out.String() != "\"hi there\"\n" || errOut.String() != "" {
		t.Fatalf("exec = %d %v, stdout %q stderr %q", code, err, out.String(), errOut.String())
	}
	if ex.Pid() != 2000 {
		t.Errorf("pid %d", ex.Pid())
	}
	p := rt.lastTask().lastExec()
	want := ProcessConfig{
		CommandLine: `echo "hi there"`, User: "ContainerUser", WorkingDirectory: `C:\app`,
		Environment:      map[string]string{"a": "3", "B": "2"},
		CreateStdOutPipe: true, CreateStdErrPipe: true,
	}
	if p.cfg.CommandLine != want.CommandLine || p.cfg.User != want.User || p.cfg.WorkingDirectory != want.WorkingDirectory ||
		p.cfg.CreateStdInPipe || !p.cfg.CreateStdOutPipe || !p.cfg.CreateStdErrPipe || p.cfg.EmulateConsole ||
		len(p.cfg.Environment) != 2 || p.cfg.Environment["B"] != "2" || p.cfg.Environment["a"] != "3" {
		t.Errorf("exec process config %+v, want %+v", p.cfg, want)
	}

	// The exit code, stderr, and input that ends with the client's.
	var errOut2 syncBuf
	ex, err = s.Exec(ctx, c.ID, container.ExecOptions{Cmd: []string{"fail", "4"}, Stderr: &errOut2})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := ex.Wait(ctx); err != nil || code != 4 || errOut2.String() != "failing\n" {
		t.Fatalf("failing exec = %d %v %q", code, err, errOut2.String())
	}
	var catOut syncBuf
	ex, err = s.Exec(ctx, c.ID, container.ExecOptions{Cmd: []string{"cat"}, Stdin: strings.NewReader("typed\n"), Stdout: &catOut})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := ex.Wait(ctx); err != nil || code != 0 || catOut.String() != "typed\n" {
		t.Fatalf("cat exec = %d %v %q", code, err, catOut.String())
	}
	if !rt.lastTask().lastExec().isClosed() {
		t.Error("the exec's process handle was not released")
	}

	// A detached exec keeps running; stopping the container ends it.
	ex, err = s.Exec(ctx, c.ID, container.ExecOptions{Cmd: []string{"sleep"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ex.Done():
		t.Fatal("a detached exec ended")
	default:
	}
	zero := time.Duration(0)
	if err := s.Stop(ctx, c.ID, &zero); err != nil {
		t.Fatal(err)
	}
	if code, err := ex.Wait(ctx); err != nil || code != 137 {
		t.Errorf("exec after stop = %d %v", code, err)
	}
	if _, err := s.Exec(ctx, c.ID, container.ExecOptions{Cmd: []string{"echo", "x"}}); !errors.Is(err, container.ErrNotRunning) {
		t.Errorf("exec in a stopped container: %v", err)
	}

	var actions []string
	for len(actions) < 8 {
		select {
		case ev := <-events:
			if strings.HasPrefix(ev.Action, "exec_") {
				actions = append(actions, ev.Action+":"+ev.Attributes["exitCode"]+ev.Attributes["execPid"])
			}
		case <-ctx.Done():
			t.Fatalf("exec events so far %q", actions)
		}
	}
	wantActions := []string{"exec_start:2000", "exec_die:0", "exec_start:2001", "exec_die:4", "exec_start:2002", "exec_die:0", "exec_start:2003", "exec_die:137"}
	if !slices.Equal(actions, wantActions) {
		t.Errorf("exec events %q, want %q", actions, wantActions)
	}
}

func TestResize(t *testing.T) {
	s, rt := newTestService(t)
	ctx := testCtx(t)
	c := createStarted(t, s, container.Config{Image: "nanoserver", Tty: true, OpenStdin: true})
	if p := rt.procs[0]; !p.EmulateConsole || p.CreateStdErrPipe {
		t.Errorf("tty process config %+v", p)
	}
	if err := s.Resize(ctx, c.ID, 40, 120); err != nil {
		t.Fatal(err)
	}
	if got := rt.lastTask().resized(); !slices.Equal(got, [][2]uint16{{40, 120}}) {
		t.Errorf("container console sizes %v", got)
	}
	var out syncBuf
	ex, err := s.Exec(ctx, c.ID, container.ExecOptions{Cmd: []string{"sleep"}, Tty: true, Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.Resize(25, 80); err != nil {
		t.Fatal(err)
	}
	p := rt.lastTask().lastExec()
	if got := p.resized(); !slices.Equal(got, [][2]uint16{{25, 80}}) {
		t.Errorf("exec console sizes %v", got)
	}
	if !p.cfg.EmulateConsole || !p.cfg.CreateStdOutPipe || p.cfg.CreateStdErrPipe {
		t.Errorf("tty exec config %+v", p.cfg)
	}
	plain, err := s.Exec(ctx, c.ID, container.ExecOptions{Cmd: []string{"sleep"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Resize(25, 80); !errors.Is(err, container.ErrConflict) {
		t.Errorf("resize without a terminal: %v", err)
	}
}

func TestExecProcessConfig(t *testing.T) {
	img := ImageConfig{Env: []string{"PATH=C:\\Windows", "A=img"}, WorkingDir: `C:\img`, User: "ImageUser", Cmd: []string{"ignored"}, ArgsEscaped: true}
	cfg := container.Config{Env: []string{"a=ctr"}, Cmd: []string{"also ignored"}}
	p, err := execProcessConfig(cfg, img, container.ExecOptions{Cmd: []string{`C:\Program Files\x.exe`, `a\"b`, ""}, Env: []string{"X=1"}, WorkingDir: `C:\w`, Tty: true, Stdin: strings.NewReader("")})
	if err != nil {
		t.Fatal(err)
	}
	want := ProcessConfig{
		CommandLine: `"C:\Program Files\x.exe" "a\\\"b" ""`, User: "ImageUser", WorkingDirectory: `C:\w`,
		Environment:    map[string]string{"PATH": `C:\Windows`, "a": "ctr", "X": "1"},
		EmulateConsole: true, CreateStdInPipe: true,
	}
	if p.CommandLine != want.CommandLine || p.User != want.User || p.WorkingDirectory != want.WorkingDirectory ||
		p.EmulateConsole != want.EmulateConsole || p.CreateStdInPipe != want.CreateStdInPipe || p.CreateStdOutPipe || p.CreateStdErrPipe ||
		len(p.Environment) != 3 || p.Environment["PATH"] != `C:\Windows` || p.Environment["a"] != "ctr" || p.Environment["X"] != "1" {
		t.Errorf("got %+v\nwant %+v", p, want)
	}
	if _, err := execProcessConfig(cfg, img, container.ExecOptions{}); !errors.Is(err, container.ErrInvalid) {
		t.Errorf("no command: %v", err)
	}
	if _, err := execProcessConfig(cfg, img, container.ExecOptions{Cmd: []string{"x"}, WorkingDir: `..\x`}); !errors.Is(err, container.ErrInvalid) {
		t.Errorf("bad working directory: %v", err)
	}
}
