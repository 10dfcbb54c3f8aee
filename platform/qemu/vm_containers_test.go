//go:build vm

package qemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/guestagent/image/imagetest"
	"github.com/berth-dev/berth/hostshim/daemon"
	"github.com/berth-dev/berth/hostshim/transport"
)

// engineClient is the engine API through the SSH transport (direct-streamlocal), as the hostagent uses it.
type engineClient struct {
	t  *testing.T
	tc *transport.Client
	hc *http.Client
}

func newEngineClient(t *testing.T, d *Driver, signerDir string) *engineClient {
	t.Helper()
	inst := newInstanceAt(t, signerDir)
	signer, err := inst.ClientSigner()
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := inst.PinnedHostKey()
	if err != nil {
		t.Fatal(err)
	}
	tc, err := transport.New(transport.Config{Dial: d.Dial, Signer: signer, HostKey: hostKey, KeepAlive: -1, ConnectTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	hc := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return tc.DialStreamLocal(ctx, d.EngineSocket())
		},
	}}
	return &engineClient{t: t, tc: tc, hc: hc}
}

// do sends a request and decodes a JSON answer into out (if not nil); it returns the status and raw body.
func (e *engineClient) do(method, path string, in, out any) (int, []byte) {
	e.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, "http://berth"+path, body)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return resp.StatusCode, raw
}

// run creates and starts a container, waits for it and returns its exit code and output.
func (e *engineClient) run(cfg map[string]any) (int, string, string) {
	e.t.Helper()
	var created struct{ Id string }
	if code, raw := e.do("POST", "/containers/create", cfg, &created); code != http.StatusCreated {
		e.t.Fatalf("create: %d %s", code, raw)
	}
	if code, raw := e.do("POST", "/containers/"+created.Id+"/start", nil, nil); code != http.StatusNoContent {
		e.t.Fatalf("start: %d %s", code, raw)
	}
	var waited struct{ StatusCode int }
	if code, raw := e.do("POST", "/containers/"+created.Id+"/wait", nil, &waited); code != http.StatusOK {
		e.t.Fatalf("wait: %d %s", code, raw)
	}
	_, logs := e.do("GET", "/containers/"+created.Id+"/logs?stdout=1&stderr=1", nil, nil)
	return waited.StatusCode, string(logs), created.Id
}

func (e *engineClient) waitImage(ref string) {
	e.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, _ := e.do("GET", "/images/"+ref+"/json", nil, nil)
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("image %s never appeared (%d)", ref, code)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestVMContainers is the VM acceptance run: boot, demo image, a pull from a registry on the host through
// the gateway, a bind mount from the 9p share both ways, a memory limit, a published port reached through
// the transport, stop/start and a killed QEMU keeping images and containers.
func TestVMContainers(t *testing.T) {
	opts := vmOptions(t)
	share := opts.Shares[0]
	if err := os.WriteFile(filepath.Join(share, "hello.txt"), []byte("from-the-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	inst := newVMInstance(t)
	d := New(inst.Platform(), opts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	t0 := time.Now()
	if err := d.Create(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(d.AgentLog())
			t.Logf("serial console:\n%s", b)
		}
		d.Delete(context.Background())
	})
	t.Logf("create: %v", time.Since(t0).Round(time.Millisecond))
	t1 := time.Now()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("start (QEMU start to agent ready): %v", time.Since(t1).Round(time.Millisecond))
	e := newEngineClient(t, d, inst.Dir)
	e.waitImage("berth/demo:latest")

	// A registry on the host's loopback, reached from the VM at its gateway 10.0.2.2.
	reg := imagetest.NewRegistry()
	defer reg.Close()
	img, err := imagetest.Busybox("sh")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(reg.Host)
	if _, err := imagetest.Push(reg.Host, "team/bb:1", img); err != nil {
		t.Fatal(err)
	}
	ref := "10.0.2.2:" + port + "/team/bb:1"
	if code, raw := e.do("POST", "/images/create?fromImage="+ref, nil, nil); code != http.StatusOK || bytes.Contains(raw, []byte(`"error"`)) {
		t.Fatalf("pull %s: %d %s", ref, code, raw)
	}
	e.waitImage(ref)

	// The share: read a host file, write one back.
	code, out, _ := e.run(map[string]any{
		"Image": ref, "Cmd": []string{"sh", "-c", "cat /data/hello.txt && echo from-the-vm > /data/out.txt"},
		"HostConfig": map[string]any{"Binds": []string{share + ":/data"}},
	})
	if code != 0 || !strings.Contains(out, "from-the-host") {
		t.Fatalf("bind mount read: exit %d, output %q", code, out)
	}
	if b, err := os.ReadFile(filepath.Join(share, "out.txt")); err != nil || string(b) != "from-the-vm\n" {
		t.Fatalf("container's write on the host: %q %v", b, err)
	}

	// A TTY (devpts in the VM).
	code, out, _ = e.run(map[string]any{"Image": "berth/demo:latest", "Cmd": []string{"tty"}, "Tty": true})
	if code != 0 || !strings.Contains(out, "/dev/pts/") {
		t.Fatalf("tty: exit %d, %q", code, out)
	}

	// Memory limit: cgroup v2 in the VM.
	code, out, _ = e.run(map[string]any{
		"Image": "berth/demo:latest", "Cmd": []string{"cat", "/sys/fs/cgroup/memory.max"},
		"HostConfig": map[string]any{"Memory": 32 << 20},
	})
	if code != 0 || !strings.Contains(out, "33554432") {
		t.Fatalf("memory.max: exit %d, %q", code, out)
	}
	code, out, _ = e.run(map[string]any{
		"Image": "berth/demo:latest", "Cmd": []string{"dd", "if=/dev/zero", "of=/dev/null", "bs=96M", "count=1"},
		"HostConfig": map[string]any{"Memory": 32 << 20},
	})
	if code != 137 {
		t.Fatalf("96 MiB in a 32 MiB container: exit %d (want 137, OOM-killed), %q", code, out)
	}

	// A published port: the demo web server, reached through the transport as the hostagent forwards it.
	var created struct{ Id string }
	if c, raw := e.do("POST", "/containers/create?name=web", map[string]any{
		"Image": "berth/demo:latest", "ExposedPorts": map[string]any{"80/tcp": map[string]any{}},
		"HostConfig": map[string]any{"PortBindings": map[string]any{"80/tcp": []map[string]string{{"HostPort": "8080"}}}},
	}, &created); c != http.StatusCreated {
		t.Fatalf("create web: %d %s", c, raw)
	}
	if c, raw := e.do("POST", "/containers/web/start", nil, nil); c != http.StatusNoContent {
		t.Fatalf("start web: %d %s", c, raw)
	}
	var info struct {
		NetworkSettings struct {
			Networks map[string]struct{ IPAddress string }
		}
	}
	_, raw := e.do("GET", "/containers/web/json", nil, &info)
	ip := info.NetworkSettings.Networks["bridge"].IPAddress
	if ip == "" {
		if b, _ := os.ReadFile(d.AgentLog()); bytes.Contains(b, []byte("container networking disabled")) {
			t.Fatal("container networking is disabled in the VM (guestagent/network opens netlink families " +
				"the VM kernel lacks, see the console log)")
		}
		t.Fatalf("web has no IP address: %s", raw)
	}
	body := httpGetThrough(t, e.tc, ip+":80")
	if !strings.Contains(body, "berth") {
		t.Fatalf("demo page: %q", body)
	}
	// An engine crash: sysinit restarts the engine, the container keeps running and is found again.
	var before struct {
		State struct {
			Running bool
			Pid     int
		}
	}
	e.do("GET", "/containers/web/json", nil, &before)
	out1, err := sessionOutput(e.tc, `for p in /proc/[0-9]*; do case "$(tr '\0' ' ' < $p/cmdline 2>/dev/null)" in "/init serve "*) pid=${p#/proc/};; esac; done; `+
		`[ -n "$pid" ] || exit 1; setsid sh -c "sleep 1; kill -9 $pid" </dev/null >/dev/null 2>&1 & echo $pid`)
	if err != nil {
		t.Fatalf("kill the engine: %v %s", err, out1)
	}
	e.tc.Close()
	time.Sleep(2 * time.Second)
	e = newEngineClient(t, d, inst.Dir)
	if err := e.tc.Connect(ctx); err != nil {
		t.Fatalf("reconnect after the engine crash: %v", err)
	}
	var after struct {
		State struct {
			Running bool
			Pid     int
		}
	}
	e.do("GET", "/containers/web/json", nil, &after)
	if !after.State.Running || after.State.Pid != before.State.Pid {
		t.Fatalf("web after the engine crash: %+v, before %+v", after.State, before.State)
	}
	if body := httpGetThrough(t, e.tc, ip+":80"); !strings.Contains(body, "berth") {
		t.Fatalf("demo page after the engine crash: %q", body)
	}
	if b, _ := os.ReadFile(d.AgentLog()); !bytes.Contains(b, []byte("engine exited; restarting it")) {
		t.Error("no restart in the console log")
	}
	// web keeps running into the stop below: shutdown ends it.
	// A stopped container to keep.
	if c, raw := e.do("POST", "/containers/create?name=keeper", map[string]any{"Image": ref, "Cmd": []string{"true"}}, nil); c != http.StatusCreated {
		t.Fatalf("create keeper: %d %s", c, raw)
	}
	e.tc.Close()

	// berth stop, berth start: images and stopped containers stay.
	t2 := time.Now()
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("stop: %v", time.Since(t2).Round(time.Millisecond))
	if b, _ := os.ReadFile(d.AgentLog()); !bytes.Contains(b, []byte("powering off")) || bytes.Contains(b, []byte("detaching it")) {
		t.Errorf("the guest did not shut down cleanly:\n%s", tail(d.AgentLog(), 20))
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e = newEngineClient(t, d, inst.Dir)
	checkPersisted(t, e, ref)

	// Kill QEMU: committed images survive (the store fsyncs before it commits).
	e.tc.Close()
	p, err := daemon.ReadPIDFile(d.p.pid)
	if err != nil {
		t.Fatal(err)
	}
	if qp, err := os.FindProcess(p.PID); err == nil {
		qp.Kill()
	}
	for p.Alive() {
		time.Sleep(20 * time.Millisecond)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e = newEngineClient(t, d, inst.Dir)
	checkPersisted(t, e, ref)
	idleRSS(t, e)
	t.Logf("total: %v", time.Since(t0).Round(time.Millisecond))
}

func checkPersisted(t *testing.T, e *engineClient, ref string) {
	t.Helper()
	for _, r := range []string{"berth/demo:latest", ref} {
		if code, raw := e.do("GET", "/images/"+r+"/json", nil, nil); code != http.StatusOK {
			t.Errorf("image %s lost: %d %s", r, code, raw)
		}
	}
	var cs []struct{ Names []string }
	e.do("GET", "/containers/json?all=1", nil, &cs)
	names := fmt.Sprint(cs)
	for _, n := range []string{"/keeper", "/web"} {
		if !strings.Contains(names, n) {
			t.Errorf("container %s lost: %s", n, names)
		}
	}
}

// sessionOutput runs a shell command in the VM through an SSH session.
func sessionOutput(tc *transport.Client, cmd string) (string, error) {
	s, err := tc.Session(context.Background())
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}

// idleRSS logs the agent's (engine's) resident memory in the VM, read through an exec'd shell session.
func idleRSS(t *testing.T, e *engineClient) {
	t.Helper()
	time.Sleep(3 * time.Second)
	out, err := sessionOutput(e.tc, `for p in /proc/[0-9]*; do r=$(sed -n 's/^VmRSS:[[:space:]]*//p' $p/status 2>/dev/null); `+
		`[ -n "$r" ] && echo "$r $(tr '\0' ' ' < $p/cmdline | cut -c1-60)"; done | sort -n | tail -4; free -m | head -2`)
	t.Logf("largest RSS in the VM (err %v):\n%s", err, out)
}

// httpGetThrough fetches / from addr inside the VM through a direct-tcpip channel.
func httpGetThrough(t *testing.T, tc *transport.Client, addr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		c, err := tc.DialTCP(ctx, addr)
		if err != nil {
			last = err
			time.Sleep(200 * time.Millisecond)
			continue
		}
		fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			last = err
			time.Sleep(200 * time.Millisecond)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		c.Close()
		return string(b)
	}
	t.Fatalf("GET http://%s/: %v", addr, last)
	return ""
}
