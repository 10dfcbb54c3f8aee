//go:build root && linux

// Package e2e runs the real docker CLI, and berth's own CLI, against a
// native berth engine (`berth-agent serve`) and a local registry.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/guestagent/cgroups/cgroupstest"
	"github.com/berth-dev/berth/guestagent/image/imagetest"
)

// env is one running engine with a registry holding the test image.
type env struct {
	dir, socket, root string
	berth, agent      string
	ref               string // registry reference of the busybox image
}

// repoRoot is the module root (tests run in test/e2e).
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func build(t *testing.T, dir, pkg, out string, extraEnv ...string) string {
	t.Helper()
	bin := filepath.Join(dir, out)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), extraEnv...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRegistry runs Debian's docker-registry on 127.0.0.1.
func startRegistry(t *testing.T, dir string) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatal("the e2e tests need Debian's docker-registry (apt-get install docker-registry)")
	}
	port := freePort(t)
	cfg := filepath.Join(dir, "registry.yml")
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%d\n", filepath.Join(dir, "registry"), port)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	host := fmt.Sprintf("127.0.0.1:%d", port)
	waitFor(t, 10*time.Second, func() bool {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return host
}

func waitFor(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mountsUnder lists mount points at or below dir.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			out = append(out, fields[4])
		}
	}
	return out
}

// containerCgroups lists container cgroups left below this process's own
// cgroups (the agent, its child, places containers in <own>/berth/<id>).
func containerCgroups(t *testing.T) []string {
	t.Helper()
	parents, err := cgroupstest.Dirs("berth")
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, base := range parents {
		entries, err := os.ReadDir(base)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.IsDir() && len(e.Name()) == 64 {
				left = append(left, filepath.Join(base, e.Name()))
			}
		}
	}
	return left
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs containers")
	}
	// The agent places containers in <own cgroup>/berth/<id>: a parent this
	// test creates goes again at the end.
	restore, err := cgroupstest.Guard("berth")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := restore(); err != nil {
			t.Error(err)
		}
	})
	dir := t.TempDir()
	e := &env{dir: dir, socket: filepath.Join(dir, "run", "docker.sock"), root: filepath.Join(dir, "root")}
	e.agent = build(t, dir, "./cmd/berth-agent", "berth-agent", "CGO_ENABLED=0")
	e.berth = build(t, dir, "./cmd/berth", "berth")

	img, err := imagetest.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	host := startRegistry(t, dir)
	if e.ref, err = imagetest.Push(host, "e2e/busybox:1", img); err != nil {
		t.Fatal(err)
	}

	logf, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(e.agent, "--debug", "serve", "--socket", e.socket, "--root", e.root)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A failed flow can leave containers behind: remove them through
		// the engine first, so that what is checked below is berth's own
		// cleanup.
		if ids, err := exec.Command("docker", "-H", "unix://"+e.socket, "ps", "-aq").Output(); err == nil && len(ids) > 0 {
			args := append([]string{"-H", "unix://" + e.socket, "rm", "-f"}, strings.Fields(string(ids))...)
			if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
				t.Errorf("remove leftover containers: %v: %s", err, out)
			}
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Error("agent did not stop within 20s of SIGTERM")
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("agent log:\n%s", b)
		}
		if m := mountsUnder(t, dir); len(m) > 0 {
			t.Errorf("mounts left behind: %v", m)
		}
		if cg := containerCgroups(t); len(cg) > 0 {
			t.Errorf("cgroups left behind: %v", cg)
		}
	})
	waitFor(t, 15*time.Second, func() bool {
		c, err := net.Dial("unix", e.socket)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	st, err := os.Stat(e.socket)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", st, err)
	}
	if st, err := os.Stat(filepath.Dir(e.socket)); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("socket dir mode: %v %v", st, err)
	}
	return e
}

// result is what a CLI invocation did.
type result struct {
	stdout, stderr string
	code           int
}

// cli runs one of the CLIs against the engine with stdin.
func (e *env) cli(t *testing.T, which, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var cmd *exec.Cmd
	if which == "docker" {
		cmd = exec.CommandContext(ctx, "docker", args...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+e.socket, "DOCKER_CONFIG="+filepath.Join(e.dir, "docker-config"))
	} else {
		cmd = exec.CommandContext(ctx, e.berth, append([]string{"--host", "unix://" + e.socket}, args...)...)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", which, args, err)
	}
	t.Logf("%s %s → %d\n%s%s", which, strings.Join(args, " "), r.code, clip(r.stdout), clip(r.stderr))
	return r
}

// clip shortens logged output (a saved image is megabytes of tar).
func clip(s string) string {
	if len(s) > 400 {
		return s[:400] + fmt.Sprintf("… (%d bytes)\n", len(s))
	}
	return s
}

func (e *env) ok(t *testing.T, which string, args ...string) string {
	t.Helper()
	r := e.cli(t, which, "", args...)
	if r.code != 0 {
		t.Fatalf("%s %v: exit %d: %s", which, args, r.code, r.stderr)
	}
	return r.stdout
}

func TestDockerCLI(t *testing.T) { testFlows(t, "docker") }

func TestBerthCLI(t *testing.T) { testFlows(t, "berth") }

// testFlows is the list of flows, through one CLI.
func testFlows(t *testing.T, which string) {
	e := newEnv(t)
	ref := e.ref

	out := e.ok(t, which, "pull", ref)
	if !strings.Contains(out, "Downloaded newer image") && !strings.Contains(out, "Pull complete") {
		t.Fatalf("pull output: %q", out)
	}

	if out := e.ok(t, which, "run", "--rm", ref, "echo", "hi"); out != "hi\n" {
		t.Fatalf("run echo: %q", out)
	}
	if r := e.cli(t, which, "", "run", "--rm", ref, "sh", "-c", "exit 3"); r.code != 3 {
		t.Fatalf("run exit 3: got %d", r.code)
	}

	id := strings.TrimSpace(e.ok(t, which, "run", "-d", "--name", "w", ref, "httpd", "-f", "-p", "80", "-h", "/var/www"))
	if len(id) != 64 {
		t.Fatalf("run -d printed %q", id)
	}
	if out := e.ok(t, which, "ps"); !strings.Contains(out, " w\n") || !strings.Contains(out, "Up ") {
		t.Fatalf("ps: %q", out)
	}
	// The check for leftover cgroups at cleanup is only meaningful if it
	// finds the running container's.
	if cg := containerCgroups(t); len(cg) == 0 {
		t.Fatal("no cgroup found for the running container")
	}
	if out := e.ok(t, which, "exec", "w", "cat", "/etc/hostname"); out != id[:12]+"\n" {
		t.Fatalf("exec hostname: %q, want %q", out, id[:12])
	}
	// The exec'd process is in the container's pid namespace: httpd is PID 1.
	if out := e.ok(t, which, "exec", "w", "cat", "/proc/1/cmdline"); !strings.HasPrefix(out, "httpd") {
		t.Fatalf("exec sees pid 1 %q", out)
	}

	e.ok(t, which, "run", "-d", "--name", "counter", ref, "sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.3; done")
	start := time.Now()
	if out := e.ok(t, which, "logs", "-f", "counter"); out != "line1\nline2\nline3\n" {
		t.Fatalf("logs -f: %q", out)
	}
	if time.Since(start) > 30*time.Second {
		t.Fatalf("logs -f did not stop when the container exited")
	}
	if out := e.ok(t, which, "logs", "--tail", "1", "counter"); out != "line3\n" {
		t.Fatalf("logs --tail 1: %q", out)
	}

	// A terminal: the process sees a pty, output arrives raw (with \r\n).
	if out := e.ok(t, which, "run", "--rm", "-t", ref, "tty"); out != "/dev/pts/0\r\n" {
		t.Fatalf("run -t: %q", out)
	}

	r := e.cli(t, which, "piped data\n", "run", "-i", "--rm", ref, "sh", "-c", "cat; echo done")
	if r.code != 0 || r.stdout != "piped data\ndone\n" {
		t.Fatalf("run -i: %d %q", r.code, r.stdout)
	}

	local := filepath.Join(e.dir, "upload.txt")
	if err := os.WriteFile(local, []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.ok(t, which, "cp", local, "w:/tmp/up.txt")
	if out := e.ok(t, which, "exec", "w", "cat", "/tmp/up.txt"); out != "from the host\n" {
		t.Fatalf("cp in: %q", out)
	}
	// A new name at the root, and into a directory named with a slash.
	e.ok(t, which, "cp", local, "w:/at-root.txt")
	e.ok(t, which, "cp", local, "w:/home/")
	if out := e.ok(t, which, "exec", "w", "cat", "/at-root.txt", "/home/upload.txt"); out != "from the host\nfrom the host\n" {
		t.Fatalf("cp in (root, dir/): %q", out)
	}
	down := filepath.Join(e.dir, "passwd.out")
	e.ok(t, which, "cp", "w:/etc/passwd", down)
	if b, err := os.ReadFile(down); err != nil || !strings.HasPrefix(string(b), "root:x:0:0:") {
		t.Fatalf("cp out: %q %v", b, err)
	}

	start = time.Now()
	e.ok(t, which, "stop", "w")
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("stop took %s", d)
	}
	if out := e.ok(t, which, "ps", "-a"); !strings.Contains(out, "Exited (") {
		t.Fatalf("ps -a after stop: %q", out)
	}
	e.ok(t, which, "rm", "-f", "w")
	e.ok(t, which, "rm", "counter")
	if out := e.ok(t, which, "ps", "-a", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("containers left: %q", out)
	}

	if out := e.ok(t, which, "images"); !strings.Contains(out, strings.TrimSuffix(ref, ":1")) {
		t.Fatalf("images: %q", out)
	}
	// save | load, through a pipe as a user would.
	saved := e.ok(t, which, "save", ref)
	e.ok(t, which, "rmi", ref)
	if out := e.ok(t, which, "images", "-q"); strings.TrimSpace(out) != "" {
		t.Fatalf("images after rmi: %q", out)
	}
	if r := e.cli(t, which, saved, "load"); r.code != 0 || !strings.Contains(r.stdout, "Loaded image: "+ref) {
		t.Fatalf("load: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if out := e.ok(t, which, "run", "--rm", ref, "echo", "reloaded"); out != "reloaded\n" {
		t.Fatalf("run after load: %q", out)
	}
	e.ok(t, which, "rmi", ref)

	if r := e.cli(t, which, "", "run", "--rm", "127.0.0.1:1/nosuch:latest", "true"); r.code != 125 {
		t.Fatalf("unknown image: exit %d", r.code)
	}
}
