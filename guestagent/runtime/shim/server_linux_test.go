package shim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/guestagent/runtime/shim"
	"github.com/berth-dev/berth/guestagent/runtime/shim/shimtest"
)

// memLogs is a LogSink in memory.
type memLogs struct {
	mu     sync.Mutex
	data   map[string]*bytes.Buffer
	closed bool
}

type memStream struct {
	l    *memLogs
	name string
}

func (s memStream) Write(p []byte) (int, error) {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if s.l.data == nil {
		s.l.data = map[string]*bytes.Buffer{}
	}
	if s.l.data[s.name] == nil {
		s.l.data[s.name] = new(bytes.Buffer)
	}
	return s.l.data[s.name].Write(p)
}
func (s memStream) Close() error { return nil }

func (l *memLogs) Stream(name string) io.WriteCloser { return memStream{l, name} }
func (l *memLogs) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return nil
}
func (l *memLogs) get(name string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.data[name] == nil {
		return ""
	}
	return l.data[name].String()
}

// syncBuf is a goroutine-safe buffer.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
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

type running struct {
	dir    string
	client *shim.Client
	logs   *memLogs
	rt     *shimtest.Runtime
	pid    int
	done   chan struct{}
	exit   *shim.Exit
}

// runShim starts a shim server for args in a temporary directory and waits
// until the container is created.
func runShim(t *testing.T, cfg shim.Config, args ...string) *running {
	t.Helper()
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle")
	if err := os.Mkdir(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	spec := specs.Spec{Process: &specs.Process{Args: args, Env: []string{"PATH=/usr/bin:/bin"}, Cwd: "/", Terminal: cfg.Tty}}
	b, _ := json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.ID, cfg.Bundle, cfg.Dir = "c1", bundle, dir
	r := &running{dir: dir, client: &shim.Client{Dir: dir}, logs: &memLogs{}, rt: &shimtest.Runtime{}, done: make(chan struct{})}
	srv := &shim.Server{Config: cfg, Runtime: r.rt, Logs: r.logs}
	ready := make(chan error, 1)
	go func() {
		defer close(r.done)
		r.exit, _ = srv.Run(context.Background(), func(pid int, err error) { r.pid = pid; ready <- err })
	}()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = r.client.Kill(context.Background(), syscall.SIGKILL, true)
		<-r.done
	})
	return r
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestServerRunExitCodeAttachAndLog(t *testing.T) {
	ctx := ctxT(t)
	r := runShim(t, shim.Config{}, "sh", "-c", "echo hi; echo err >&2; exit 3")
	st, err := r.client.State(ctx)
	if err != nil || st.Status != "created" || st.Pid != r.pid || r.pid == 0 {
		t.Fatalf("state before start = %+v, %v (pid %d)", st, err, r.pid)
	}
	var out, errOut syncBuf
	sess, err := r.client.Attach(ctx, shim.Streams{Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatal(err)
	}
	waitc := make(chan *shim.Exit, 1)
	go func() { e, _ := r.client.Wait(ctx); waitc <- e }()
	if pid, err := r.client.Start(ctx); err != nil || pid != r.pid {
		t.Fatalf("start = %d, %v", pid, err)
	}
	exit, err := sess.Wait(ctx)
	if err != nil || exit == nil || exit.ExitCode != 3 {
		t.Fatalf("attach exit = %+v, %v", exit, err)
	}
	if out.String() != "hi\n" || errOut.String() != "err\n" {
		t.Fatalf("attached output %q / %q", out.String(), errOut.String())
	}
	if e := <-waitc; e == nil || e.ExitCode != 3 {
		t.Fatalf("wait = %+v", e)
	}
	<-r.done
	if r.logs.get("stdout") != "hi\n" || r.logs.get("stderr") != "err\n" || !r.logs.closed {
		t.Fatalf("log: %q %q closed=%v", r.logs.get("stdout"), r.logs.get("stderr"), r.logs.closed)
	}
	onDisk, err := shim.ReadExit(r.dir)
	if err != nil || onDisk.ExitCode != 3 || onDisk.FinishedAt.IsZero() {
		t.Fatalf("exit.json = %+v, %v", onDisk, err)
	}
	if d := r.rt.Deleted(); len(d) == 0 || d[len(d)-1] != "c1" {
		t.Fatalf("container not deleted: %v", d)
	}
	if _, err := os.Stat(filepath.Join(r.dir, shim.SocketFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
	if _, err := r.client.State(ctx); !errors.Is(err, shim.ErrUnavailable) {
		t.Fatalf("state after exit: %v, want ErrUnavailable", err)
	}
}

func TestServerKillSignalExitCode(t *testing.T) {
	ctx := ctxT(t)
	r := runShim(t, shim.Config{}, "sleep", "100")
	if _, err := r.client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.client.Kill(ctx, syscall.SIGTERM, false); err != nil {
		t.Fatal(err)
	}
	exit, err := r.client.Wait(ctx)
	if err != nil || exit.ExitCode != 143 || exit.Signal != 15 {
		t.Fatalf("exit = %+v, %v", exit, err)
	}
}

func TestServerStdinOnce(t *testing.T) {
	ctx := ctxT(t)
	r := runShim(t, shim.Config{OpenStdin: true, StdinOnce: true}, "cat")
	var out syncBuf
	pr, pw := io.Pipe()
	sess, err := r.client.Attach(ctx, shim.Streams{Stdin: pr, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pw.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	// Closing the attached stdin closes cat's stdin: cat ends.
	pw.Close()
	exit, err := sess.Wait(ctx)
	if err != nil || exit == nil || exit.ExitCode != 0 {
		t.Fatalf("exit = %+v, %v", exit, err)
	}
	if out.String() != "ping\n" {
		t.Fatalf("output %q", out.String())
	}
}

func TestServerMultipleAttachersAndExec(t *testing.T) {
	ctx := ctxT(t)
	r := runShim(t, shim.Config{OpenStdin: true}, "cat")
	var a, b syncBuf
	pr, pw := io.Pipe()
	s1, err := r.client.Attach(ctx, shim.Streams{Stdin: pr, Stdout: &a})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := r.client.Attach(ctx, shim.Streams{Stdout: &b})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pw.Write([]byte("both\n"))
	waitFor(t, func() bool { return a.String() == "both\n" && b.String() == "both\n" })
	// Without StdinOnce, one client leaving keeps stdin open.
	s1.Close()
	pw.Close()

	// exec with stdin, stdout, stderr and an exit code.
	var eo, ee syncBuf
	proc := &specs.Process{Args: []string{"sh", "-c", "read x; echo out:$x; echo e >&2; exit 7"}, Env: []string{"PATH=/usr/bin:/bin"}, Cwd: "/"}
	es, err := r.client.Exec(ctx, proc, shim.Streams{Stdin: strings.NewReader("v\n"), Stdout: &eo, Stderr: &ee})
	if err != nil {
		t.Fatal(err)
	}
	if es.Pid == 0 {
		t.Fatal("exec pid 0")
	}
	exit, err := es.Wait(ctx)
	if err != nil || exit == nil || exit.ExitCode != 7 {
		t.Fatalf("exec exit = %+v, %v", exit, err)
	}
	if eo.String() != "out:v\n" || ee.String() != "e\n" {
		t.Fatalf("exec output %q %q", eo.String(), ee.String())
	}
	// The container still runs; a second attacher still gets output.
	st, _ := r.client.State(ctx)
	if st.Status != "running" {
		t.Fatalf("status %q", st.Status)
	}
	if err := r.client.Kill(ctx, syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	exit, err = s2.Wait(ctx)
	if err != nil || exit == nil || exit.ExitCode != 137 {
		t.Fatalf("attacher 2 exit = %+v, %v", exit, err)
	}
	// exec into a stopped container fails.
	<-r.done
	if _, err := r.client.Exec(ctx, proc, shim.Streams{}); err == nil {
		t.Fatal("exec after exit succeeded")
	}
}

func TestServerTty(t *testing.T) {
	ctx := ctxT(t)
	r := runShim(t, shim.Config{Tty: true, OpenStdin: true}, "sh", "-c", "stty size; read x; echo got:$x; exit 2")
	var out syncBuf
	pr, pw := io.Pipe()
	defer pw.Close()
	sess, err := r.client.Attach(ctx, shim.Streams{Stdin: pr, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.client.Resize(ctx, 33, 111); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(out.String(), "33 111") })
	pw.Write([]byte("abc\n"))
	exit, err := sess.Wait(ctx)
	if err != nil || exit == nil || exit.ExitCode != 2 {
		t.Fatalf("exit %+v %v", exit, err)
	}
	if !strings.Contains(out.String(), "got:abc") {
		t.Fatalf("tty output %q", out.String())
	}
	<-r.done
	if !strings.Contains(r.logs.get("stdout"), "got:abc") {
		t.Fatalf("tty log %q", r.logs.get("stdout"))
	}
}

func TestServerStartTimeout(t *testing.T) {
	r := runShim(t, shim.Config{StartTimeout: 50 * time.Millisecond}, "true")
	<-r.done
	if r.exit == nil || r.exit.Error == "" {
		t.Fatalf("exit = %+v, want an error", r.exit)
	}
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

func TestServerStartTimeoutOnlyBeforeStart(t *testing.T) {
	ctx := ctxT(t)
	r := runShim(t, shim.Config{StartTimeout: 100 * time.Millisecond}, "sleep", "100")
	if _, err := r.client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // past the start timeout: nothing may happen
	st, err := r.client.State(ctx)
	if err != nil || st.Status != "running" {
		t.Fatalf("state after the start timeout: %+v, %v", st, err)
	}
}
