//go:build root && linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/guestagent/image/imagetest"
	"github.com/berth-dev/berth/guestagent/sshwire/wiretest"
)

// nativeEnv is one berth home with a native instance "default" started by `berth start --driver native`.
type nativeEnv struct {
	dir, home, inst   string
	berth, sock, ref  string
	dockerConfig      string
	agentPID          int
	cgroups, slirpPID []string
}

const nativeImage = "e2e/busybox:1"

func newNativeEnv(t *testing.T) *nativeEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the native driver creates namespaces, mounts and cgroups")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	e := &nativeEnv{dir: dir, home: filepath.Join(dir, "home"), ref: nativeImage, dockerConfig: filepath.Join(dir, "docker-config")}
	e.inst = filepath.Join(e.home, "default")
	e.sock = filepath.Join(e.inst, "docker.sock")
	// berth-agent next to berth: the native driver finds it there.
	build(t, bin, "./cmd/berth-agent", "berth-agent", "CGO_ENABLED=0")
	e.berth = build(t, bin, "./cmd/berth", "berth")

	t.Cleanup(func() { e.teardown(t) })
	out := e.mustBerth(t, "start", "--driver", "native")
	for _, step := range []string{"starting agent", "waiting for agent", "starting hostagent", "is running"} {
		if !strings.Contains(out, step) {
			t.Fatalf("berth start output lacks %q:\n%s", step, out)
		}
	}
	e.agentPID = readPID(t, filepath.Join(e.inst, "agent.pid"))
	if b, err := os.ReadFile(filepath.Join(e.inst, "agent.cgroup")); err == nil {
		e.cgroups = strings.Fields(string(b))
	}
	if len(e.cgroups) == 0 {
		t.Fatal("no tracking cgroups recorded")
	}

	img, err := imagetest.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(nativeImage)
	if err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(dir, "busybox.tar")
	if err := tarball.WriteToFile(tarPath, tag, img); err != nil {
		t.Fatal(err)
	}
	if out := e.mustDocker(t, "load", "-i", tarPath); !strings.Contains(out, "Loaded image: "+nativeImage) {
		t.Fatalf("docker load: %q", out)
	}
	return e
}

// teardown deletes the instance and checks that nothing of it remains: processes, mounts, cgroups.
func (e *nativeEnv) teardown(t *testing.T) {
	var pids []int
	for _, f := range []string{"agent.pid", "hostagent.pid", "slirp.pid"} {
		if b, err := os.ReadFile(filepath.Join(e.inst, f)); err == nil {
			if pid, err := strconv.Atoi(strings.Fields(string(b) + " x")[0]); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	if t.Failed() {
		for _, f := range []string{"agent.log", "hostagent.log"} {
			if b, err := os.ReadFile(filepath.Join(e.inst, f)); err == nil {
				t.Logf("%s:\n%s", f, tailLines(string(b), 60))
			}
		}
	}
	if _, err := os.Stat(e.inst); err == nil {
		if out, err := e.berthCmd("delete", "-f"); err != nil {
			t.Errorf("berth delete: %v\n%s", err, out)
		}
	}
	if _, err := os.Stat(e.inst); err == nil {
		t.Errorf("instance directory %s left after delete", e.inst)
	}
	for _, pid := range pids {
		if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && !bytes.Contains(st, []byte(") Z ")) {
			t.Errorf("process %d left running after delete: %s", pid, st)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if m := mountsUnder(t, e.dir); len(m) > 0 {
		t.Errorf("mounts left behind: %v", m)
	}
	for _, cg := range e.cgroups {
		if _, err := os.Stat(cg); err == nil {
			t.Errorf("cgroup left behind: %s", cg)
		}
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.Fields(string(b))[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func (e *nativeEnv) berthCmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.berth, args...)
	cmd.Env = append(os.Environ(), "BERTH_HOME="+e.home)
	cmd.Dir = e.dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *nativeEnv) mustBerth(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.berthCmd(args...)
	t.Logf("berth %s →\n%s", strings.Join(args, " "), clip(out))
	if err != nil {
		t.Fatalf("berth %v: %v\n%s", args, err, out)
	}
	return out
}

func (e *nativeEnv) docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"-H", "unix://" + e.sock}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+e.dockerConfig)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("docker %v: %w: %s", args, err, errb.String())
	}
	return out.String(), nil
}

func (e *nativeEnv) mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.docker(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// listenersOn returns the local addresses of listening TCP sockets (or bound UDP sockets) on port, from
// {tcp,tcp6,udp,udp6} of this thread's (the host's) network namespace. /proc/thread-self, not /proc/self:
// a thread that joined the agent's namespace (inAgentNetns) may have been the main thread, which /proc/self
// follows.
func listenersOn(t *testing.T, proto string, port int) []string {
	t.Helper()
	var out []string
	for _, f := range []string{"/proc/thread-self/net/" + proto, "/proc/thread-self/net/" + proto + "6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 4 {
				continue
			}
			hexIP, hexPort, _ := strings.Cut(fs[1], ":")
			p, _ := strconv.ParseUint(hexPort, 16, 16)
			// TCP: only LISTEN (0A); UDP: every bound socket (07 = unconnected).
			if int(p) != port || (proto == "tcp" && fs[3] != "0A") {
				continue
			}
			out = append(out, decodeProcIP(hexIP))
		}
	}
	return out
}

func decodeProcIP(h string) string {
	b, _ := hex.DecodeString(h)
	if len(b) == 4 {
		return net.IPv4(b[3], b[2], b[1], b[0]).String()
	}
	ip := make(net.IP, 16)
	for i := 0; i < 16; i += 4 {
		ip[i], ip[i+1], ip[i+2], ip[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return ip.String()
}

// inAgentNetns runs f on a thread that has joined the agent's network namespace; sockets f creates live
// there. The thread is discarded afterwards.
func inAgentNetns(t *testing.T, pid int, f func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		f()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// agentTCPEcho starts a TCP echo server on 127.0.0.1 inside the agent's network namespace.
func agentTCPEcho(t *testing.T, pid int) int {
	t.Helper()
	var l net.Listener
	var err error
	inAgentNetns(t, pid, func() { l, err = net.Listen("tcp", "127.0.0.1:0") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go wiretest.EchoServe(l)
	return l.Addr().(*net.TCPAddr).Port
}

// agentUDPEcho starts a UDP echo server on 127.0.0.1 inside the agent's network namespace.
func agentUDPEcho(t *testing.T, pid int) int {
	t.Helper()
	var pc net.PacketConn
	var err error
	inAgentNetns(t, pid, func() { pc, err = net.ListenPacket("udp", "127.0.0.1:0") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, a, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], a)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// cutTransport shuts down, from the agent's side, every connection accepted on its SSH endpoint (the
// hostagent's link), with pidfd_getfd. It returns how many it cut. An accepted unix socket belongs to the
// connecting side's network namespace (the host's), so both tables are searched.
func cutTransport(t *testing.T, agentPID int, sshSock string) int {
	t.Helper()
	var b []byte
	for _, f := range []string{"/proc/thread-self/net/unix", "/proc/" + strconv.Itoa(agentPID) + "/net/unix"} {
		x, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, x...)
	}
	inodes := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		fs := strings.Fields(line)
		// Num RefCount Protocol Flags Type St Inode Path; St 03 = connected.
		if len(fs) == 8 && fs[7] == sshSock && fs[5] == "03" {
			inodes[fs[6]] = true
		}
	}
	pidfd, err := unix.PidfdOpen(agentPID, 0)
	if err != nil {
		t.Fatalf("pidfd_open: %v", err)
	}
	defer unix.Close(pidfd)
	fdDir := "/proc/" + strconv.Itoa(agentPID) + "/fd"
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ent := range ents {
		link, err := os.Readlink(filepath.Join(fdDir, ent.Name()))
		if err != nil || !strings.HasPrefix(link, "socket:[") || !inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
			continue
		}
		target, _ := strconv.Atoi(ent.Name())
		fd, err := unix.PidfdGetfd(pidfd, target, 0)
		if err != nil {
			t.Fatalf("pidfd_getfd: %v", err)
		}
		_ = unix.Shutdown(fd, unix.SHUT_RDWR)
		unix.Close(fd)
		n++
	}
	return n
}

func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

const webScript = `mkdir -p /www && echo hello-berth > /www/index.html && exec httpd -f -p %d -h /www`

// TestNativeInstance is the list of flows against a native instance.
func TestNativeInstance(t *testing.T) {
	e := newNativeEnv(t)

	// The socket is the owner's only.
	for p, want := range map[string]os.FileMode{e.sock: 0o600, e.inst: 0o700} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != want {
			t.Fatalf("%s: mode %v, want %v (%v)", p, st.Mode().Perm(), want, err)
		}
	}
	if out := e.mustBerth(t, "status"); !strings.Contains(out, "agent:     running") || !strings.Contains(out, "hostagent: running") || !strings.Contains(out, "(ok)") {
		t.Fatalf("status:\n%s", out)
	}
	// A second start is a no-op.
	if out := e.mustBerth(t, "start"); strings.Contains(out, "starting") {
		t.Fatalf("start of a running instance restarted something:\n%s", out)
	}

	t.Run("OtherUIDRefused", func(t *testing.T) {
		cmd := exec.Command("docker", "-H", "unix://"+e.sock, "version")
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+e.dockerConfig)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "permission denied") {
			t.Fatalf("docker as uid 65534: %v\n%s", err, out)
		}
	})

	t.Run("SSH", func(t *testing.T) {
		if out := e.mustBerth(t, "ssh", "--", "echo", "hi"); strings.TrimSpace(out) != "hi" {
			t.Fatalf("berth ssh echo: %q", out)
		}
		out, err := e.berthCmd("ssh", "--", "sh", "-c", "'exit 3'")
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
			t.Fatalf("berth ssh exit 3: %v %q", err, out)
		}
	})

	// Bridge networking: the container's own IP inside the agent.
	t.Run("BridgeHTTP", func(t *testing.T) {
		hp := freePort(t)
		id := strings.TrimSpace(e.mustDocker(t, "run", "-d", "-p", fmt.Sprintf("%d:80", hp), nativeImage, "sh", "-c", fmt.Sprintf(webScript, 80)))
		defer e.docker("rm", "-f", id)
		ip := strings.TrimSpace(e.mustDocker(t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", id))
		if ip == "" || ip == "invalid IP" || ip == "<no value>" {
			t.Skipf("container networking is not wired in the agent yet: container %.12s has no IP (inspect: %q); the host-network flows below cover the forwarding path", id, ip)
		}
		checkPublishedHTTP(t, e, id, hp)
	})

	// Host network of the agent (its own namespace): reached on the agent's loopback.
	t.Run("HostNetworkHTTP", func(t *testing.T) {
		hp := freePort(t)
		id := strings.TrimSpace(e.mustDocker(t, "run", "-d", "--network", "host", "-p", fmt.Sprintf("%d:%d", hp, hp), nativeImage, "sh", "-c", fmt.Sprintf(webScript, hp)))
		defer e.docker("rm", "-f", id)
		checkPublishedHTTP(t, e, id, hp)
	})

	t.Run("UDP", func(t *testing.T) {
		echoPort := agentUDPEcho(t, e.agentPID)
		hp := freePort(t)
		id := strings.TrimSpace(e.mustDocker(t, "run", "-d", "--network", "host", "-p", fmt.Sprintf("127.0.0.1:%d:%d/udp", hp, echoPort), nativeImage, "sleep", "300"))
		defer e.docker("rm", "-f", id)
		addr := fmt.Sprintf("127.0.0.1:%d", hp)
		waitFor(t, 15*time.Second, func() bool { return len(listenersOn(t, "udp", hp)) > 0 })
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for i, msg := range []string{"ping", strings.Repeat("x", 1400), "pong"} {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 65535)
			n, err := c.Read(buf)
			if err != nil || string(buf[:n]) != msg {
				t.Fatalf("datagram %d: %d bytes back, %v", i, n, err)
			}
		}
		if l := listenersOn(t, "udp", hp); len(l) != 1 || l[0] != "127.0.0.1" {
			t.Fatalf("udp bound on %v, want 127.0.0.1 only", l)
		}
		e.mustDocker(t, "stop", "-t", "1", id)
		waitFor(t, 15*time.Second, func() bool { return len(listenersOn(t, "udp", hp)) == 0 })
	})

	t.Run("HostagentKilled", func(t *testing.T) {
		hp := freePort(t)
		id := strings.TrimSpace(e.mustDocker(t, "run", "-d", "--network", "host", "-p", fmt.Sprintf("%d:%d", hp, hp), nativeImage, "sh", "-c", fmt.Sprintf(webScript, hp)))
		defer e.docker("rm", "-f", id)
		url := fmt.Sprintf("http://127.0.0.1:%d/", hp)
		waitFor(t, 15*time.Second, func() bool { body, err := httpGet(url); return err == nil && body == "hello-berth\n" })
		haPID := readPID(t, filepath.Join(e.inst, "hostagent.pid"))
		if err := syscall.Kill(haPID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, func() bool { _, err := httpGet(url); return err != nil })
		out := e.mustBerth(t, "start")
		if strings.Contains(out, "starting agent") || !strings.Contains(out, "starting hostagent") {
			t.Fatalf("start after the hostagent died should restart only the hostagent:\n%s", out)
		}
		if readPID(t, filepath.Join(e.inst, "agent.pid")) != e.agentPID {
			t.Fatal("the agent was restarted")
		}
		if ps := e.mustDocker(t, "ps", "-q", "--no-trunc"); !strings.Contains(ps, id) {
			t.Fatalf("container %.12s lost: %q", id, ps)
		}
		waitFor(t, 15*time.Second, func() bool { body, err := httpGet(url); return err == nil && body == "hello-berth\n" })
	})

	// The native driver hands published-port connections to the agent as descriptors: cutting the SSH link
	// must leave a connection in flight alone, and new connections must work once the link is back.
	t.Run("TransportCutHandoff", func(t *testing.T) { e.transportCut(t, true) })
	// The same over SSH (BERTH_NO_HANDOFF, as for a VM): the connection in flight ends, new ones work.
	t.Run("TransportCutSSH", func(t *testing.T) {
		e.restartHostagent(t, "BERTH_NO_HANDOFF=1")
		defer e.restartHostagent(t)
		e.transportCut(t, false)
	})

	t.Run("WrongHostKey", func(t *testing.T) {
		pin := filepath.Join(e.inst, "ssh_host_key.pub")
		good, err := os.ReadFile(pin)
		if err != nil {
			t.Fatal(err)
		}
		haPID := readPID(t, filepath.Join(e.inst, "hostagent.pid"))
		_ = syscall.Kill(haPID, syscall.SIGTERM)
		waitFor(t, 15*time.Second, func() bool { _, err := os.Stat(filepath.Join(e.inst, "hostagent.pid")); return err != nil })
		bad := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBm8tnwr5DM8RkCD1KjDqNzSJyqSl1nSSSOEQTv2dqj4 wrong\n"
		if err := os.WriteFile(pin, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := e.berthCmd("start")
		if err == nil || !strings.Contains(out, "host key mismatch") {
			t.Fatalf("start with a wrong pinned key: %v\n%s", err, out)
		}
		if _, err := os.Stat(filepath.Join(e.inst, "hostagent.pid")); err == nil {
			t.Fatal("a hostagent was started despite the mismatch")
		}
		if err := os.WriteFile(pin, good, 0o644); err != nil {
			t.Fatal(err)
		}
		e.mustBerth(t, "start")
	})

	t.Run("StopStart", func(t *testing.T) {
		id := strings.TrimSpace(e.mustDocker(t, "run", "-d", "--name", "persist", nativeImage, "sleep", "300"))
		out := e.mustBerth(t, "stop")
		for _, s := range []string{"stopping 1 container(s)", "stopping hostagent", "stopping agent"} {
			if !strings.Contains(out, s) {
				t.Errorf("stop output lacks %q", s)
			}
		}
		if out := e.mustBerth(t, "status"); !strings.Contains(out, "agent:     stopped") || !strings.Contains(out, "hostagent: stopped") {
			t.Fatalf("status after stop:\n%s", out)
		}
		for _, cg := range e.cgroups {
			if _, err := os.Stat(cg); err == nil {
				t.Errorf("cgroup %s left after stop", cg)
			}
		}
		if m := mountsUnder(t, e.dir); len(m) > 0 {
			t.Errorf("mounts left after stop: %v", m)
		}
		e.mustBerth(t, "start")
		e.agentPID = readPID(t, filepath.Join(e.inst, "agent.pid"))
		if out := e.mustDocker(t, "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Status}}"); !strings.Contains(out, id+" Exited") {
			t.Fatalf("container after stop/start: %q", out)
		}
		if out := e.mustDocker(t, "images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(out, nativeImage) {
			t.Fatalf("images after stop/start: %q", out)
		}
		e.mustDocker(t, "rm", id)
	})
}

// checkPublishedHTTP: the page answers on 127.0.0.1:hp, the port is bound on 127.0.0.1 only, and the
// listener goes when the container stops.
func checkPublishedHTTP(t *testing.T, e *nativeEnv, id string, hp int) {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/", hp)
	var body string
	waitFor(t, 15*time.Second, func() bool {
		var err error
		body, err = httpGet(url)
		return err == nil
	})
	if body != "hello-berth\n" {
		t.Fatalf("GET %s: %q", url, body)
	}
	if l := listenersOn(t, "tcp", hp); len(l) != 1 || l[0] != "127.0.0.1" {
		t.Fatalf("port %d listens on %v, want 127.0.0.1 only", hp, l)
	}
	e.mustDocker(t, "stop", "-t", "1", id)
	waitFor(t, 15*time.Second, func() bool { return len(listenersOn(t, "tcp", hp)) == 0 })
}

// TestNativeManyConnections: 1000 concurrent forwarded connections each echo 1 MiB, checksummed; no
// errors, and the hostagent's and agent's descriptors return to their baseline.
func TestNativeManyConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 2 GiB through the transport")
	}
	e := newNativeEnv(t)
	echoPort := agentTCPEcho(t, e.agentPID)
	hp := freePort(t)
	id := strings.TrimSpace(e.mustDocker(t, "run", "-d", "--network", "host", "-p", fmt.Sprintf("%d:%d", hp, echoPort), nativeImage, "sleep", "600"))
	defer e.docker("rm", "-f", id)
	addr := fmt.Sprintf("127.0.0.1:%d", hp)
	waitFor(t, 15*time.Second, func() bool {
		got, err := wiretest.EchoOnce(addr, []byte("x"), 30*time.Second)
		return err == nil && string(got) == "x"
	})
	haPID := readPID(t, filepath.Join(e.inst, "hostagent.pid"))
	baseHA, baseAgent := fdCount(t, haPID), fdCount(t, e.agentPID)

	const conns, size = 1000, 1 << 20
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	start := time.Now()
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := make([]byte, size)
			_, _ = rand.Read(msg)
			want := sha256.Sum256(msg)
			c, err := net.DialTimeout("tcp", addr, 30*time.Second)
			if err != nil {
				errs <- fmt.Errorf("conn %d: %w", i, err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
			werr := make(chan error, 1)
			go func() {
				_, err := c.Write(msg)
				if err == nil {
					err = c.(*net.TCPConn).CloseWrite()
				}
				werr <- err
			}()
			h := sha256.New()
			n, err := io.Copy(h, bufio.NewReader(c))
			if e := <-werr; e != nil {
				errs <- fmt.Errorf("conn %d write: %w", i, e)
				return
			}
			if err != nil || n != size || !bytes.Equal(h.Sum(nil), want[:]) {
				errs <- fmt.Errorf("conn %d: %d bytes back, checksum ok %v, %v", i, n, bytes.Equal(h.Sum(nil), want[:]), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n < 10 {
			t.Error(err)
		}
		n++
	}
	if n > 0 {
		t.Fatalf("%d of %d connections failed", n, conns)
	}
	t.Logf("%d connections × 1 MiB echoed in %s", conns, time.Since(start).Round(time.Millisecond))
	waitFor(t, 30*time.Second, func() bool { return fdCount(t, haPID) <= baseHA && fdCount(t, e.agentPID) <= baseAgent })
	t.Logf("descriptors: hostagent %d (baseline %d), agent %d (baseline %d)", fdCount(t, haPID), baseHA, fdCount(t, e.agentPID), baseAgent)
}

// transportCut cuts the hostagent's SSH link while a forwarded connection streams. handoff tells which
// path the hostagent uses for published ports: with handoff the connection survives the cut, over SSH it
// ends; either way new connections work once the link is back, and so does docker.sock.
func (e *nativeEnv) transportCut(t *testing.T, handoff bool) {
	echoPort := agentTCPEcho(t, e.agentPID)
	hp := freePort(t)
	id := strings.TrimSpace(e.mustDocker(t, "run", "-d", "--network", "host", "-p", fmt.Sprintf("%d:%d", hp, echoPort), nativeImage, "sleep", "300"))
	defer e.docker("rm", "-f", id)
	addr := fmt.Sprintf("127.0.0.1:%d", hp)
	waitFor(t, 15*time.Second, func() bool {
		got, err := wiretest.EchoOnce(addr, []byte("x"), 30*time.Second)
		return err == nil && string(got) == "x"
	})

	// A transfer in flight: the host side keeps writing and reading.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	chunk := make([]byte, 64<<10)
	if _, err := c.Write(chunk); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, chunk); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1) // the loop's error; nil when stopLoop ended it
	stopLoop := make(chan struct{})
	go func() {
		_ = c.SetDeadline(time.Now().Add(60 * time.Second))
		want := make([]byte, len(chunk))
		for i := byte(0); ; i++ {
			select {
			case <-stopLoop:
				ended <- nil
				return
			default:
			}
			for j := range chunk {
				chunk[j] = i + byte(j)
			}
			copy(want, chunk)
			if _, err := c.Write(chunk); err != nil {
				ended <- err
				return
			}
			if _, err := io.ReadFull(c, chunk); err != nil {
				ended <- err
				return
			}
			if !bytes.Equal(chunk, want) {
				ended <- fmt.Errorf("echo %d corrupted", i)
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond) // let bytes flow
	if n := cutTransport(t, e.agentPID, filepath.Join(e.inst, "agent.ssh")); n == 0 {
		t.Fatal("no transport connection to cut")
	}
	if handoff {
		// The agent relays it itself: it goes on, and ends cleanly when the client stops.
		select {
		case err := <-ended:
			t.Fatalf("a handed-off connection ended when the SSH link was cut: %v", err)
		case <-time.After(2 * time.Second):
		}
		close(stopLoop)
		if err := <-ended; err != nil {
			t.Fatalf("the handed-off connection after the cut: %v", err)
		}
	} else {
		select {
		case err := <-ended:
			t.Logf("in-flight connection ended: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("the in-flight connection did not end after the transport was cut")
		}
	}
	waitFor(t, 30*time.Second, func() bool {
		got, err := wiretest.EchoOnce(addr, []byte("again"), 30*time.Second)
		return err == nil && string(got) == "again"
	})
	if _, err := e.docker("version"); err != nil {
		t.Fatalf("docker.sock after the cut: %v", err)
	}
}

// restartHostagent stops the hostagent and starts it again with `berth start`, with env added.
func (e *nativeEnv) restartHostagent(t *testing.T, env ...string) {
	t.Helper()
	pidFile := filepath.Join(e.inst, "hostagent.pid")
	_ = syscall.Kill(readPID(t, pidFile), syscall.SIGTERM)
	waitFor(t, 15*time.Second, func() bool { _, err := os.Stat(pidFile); return err != nil })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.berth, "start")
	cmd.Env = append(append(os.Environ(), "BERTH_HOME="+e.home), env...)
	cmd.Dir = e.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("berth start %v: %v\n%s", env, err, out)
	}
}
