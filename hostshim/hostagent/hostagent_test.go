package hostagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"golang.org/x/crypto/ssh"

	"github.com/berth-dev/berth/guestagent/sshserver"
	"github.com/berth-dev/berth/guestagent/sshwire/wiretest"
	"github.com/berth-dev/berth/hostshim/daemon"
	"github.com/berth-dev/berth/hostshim/transport"
)

// fakeEngine is a tiny Docker API: ping, events, list and inspect of scripted containers.
type fakeEngine struct {
	mu         sync.Mutex
	containers map[string]map[string]any // id → inspect JSON
	subs       []chan map[string]any
	requests   atomic.Int64
}

var versionPrefix = regexp.MustCompile(`^/v[0-9.]+`)

func (e *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.requests.Add(1)
	p := versionPrefix.ReplaceAllString(r.URL.Path, "")
	w.Header().Set("Api-Version", "1.47")
	w.Header().Set("Ostype", "linux")
	switch {
	case p == "/_ping":
		io.WriteString(w, "OK")
	case p == "/events":
		ch := make(chan map[string]any, 16)
		e.mu.Lock()
		e.subs = append(e.subs, ch)
		e.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		enc := json.NewEncoder(w)
		for {
			select {
			case m := <-ch:
				_ = enc.Encode(m)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	case p == "/containers/json":
		e.mu.Lock()
		var list []map[string]any
		for id, c := range e.containers {
			if c["State"].(map[string]any)["Running"] == true {
				list = append(list, map[string]any{"Id": id})
			}
		}
		e.mu.Unlock()
		_ = json.NewEncoder(w).Encode(list)
	case strings.HasPrefix(p, "/containers/") && strings.HasSuffix(p, "/json"):
		id := strings.TrimSuffix(strings.TrimPrefix(p, "/containers/"), "/json")
		e.mu.Lock()
		c, ok := e.containers[id]
		e.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"message":"no such container"}`)
			return
		}
		_ = json.NewEncoder(w).Encode(c)
	default:
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"message":"not here"}`)
	}
}

// run makes container id run with ports (containerPort/proto → hostPort) on the host network and
// announces it.
func (e *fakeEngine) run(id string, ports map[string]string, running bool) {
	pm := map[string]any{}
	for cp, hp := range ports {
		pm[cp] = []map[string]string{{"HostIp": "", "HostPort": hp}}
	}
	e.mu.Lock()
	if e.containers == nil {
		e.containers = map[string]map[string]any{}
	}
	e.containers[id] = map[string]any{
		"Id":              id,
		"State":           map[string]any{"Running": running},
		"HostConfig":      map[string]any{"NetworkMode": "host"},
		"NetworkSettings": map[string]any{"Ports": pm, "Networks": map[string]any{}},
	}
	action := "start"
	if !running {
		action = "die"
	}
	for _, ch := range e.subs {
		ch <- map[string]any{"Type": "container", "Action": action, "Actor": map[string]any{"ID": id}}
	}
	e.mu.Unlock()
}

type rig struct {
	dir, apiSock string
	engine       *fakeEngine
	srv          *sshserver.Server
	conns        sync.Map // server-side transport conns
	cfg          Config
}

func newRig(t *testing.T) *rig {
	t.Helper()
	dir, err := os.MkdirTemp("", "ha")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	r := &rig{dir: dir, apiSock: filepath.Join(dir, "docker.sock"), engine: &fakeEngine{}}

	engineSock := filepath.Join(dir, "engine.sock")
	el, err := net.Listen("unix", engineSock)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: r.engine}
	go func() { _ = hs.Serve(el) }()
	t.Cleanup(func() { hs.Close() })

	hostSigner, _, _, err := transport.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	clientSigner, _, _, err := transport.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	r.srv, err = sshserver.New(sshserver.Config{HostKey: hostSigner, AuthorizedKeys: []ssh.PublicKey{clientSigner.PublicKey()}, EngineSocket: engineSock})
	if err != nil {
		t.Fatal(err)
	}
	sshSock := filepath.Join(dir, "agent.ssh")
	sl, err := net.Listen("unix", sshSock)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.srv.Serve(&trackingListener{Listener: sl, conns: &r.conns}) }()
	t.Cleanup(func() { r.srv.Close() })

	r.cfg = Config{
		Dial:         transport.DialUnix(sshSock),
		Signer:       clientSigner,
		HostKey:      hostSigner.PublicKey(),
		EngineSocket: engineSock,
		APISocket:    r.apiSock,
		PIDFile:      filepath.Join(dir, "hostagent.pid"),
		KeepAlive:    200 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	return r
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

type trackingListener struct {
	net.Listener
	conns *sync.Map
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.conns.Store(c, true)
	}
	return c, err
}

// cut closes every transport connection on the server side.
func (r *rig) cut() {
	r.conns.Range(func(k, _ any) bool {
		k.(net.Conn).Close()
		r.conns.Delete(k)
		return true
	})
}

func (r *rig) start(t *testing.T, cfg Config) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, cfg) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-errc
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	waitFor(t, func() bool { _, err := os.Stat(cfg.APISocket); return err == nil })
	return stop
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func apiClient(t *testing.T, sock string) *client.Client {
	t.Helper()
	cl, err := client.New(client.WithHost("unix://"+sock), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
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

func echo(addr, msg string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	_ = c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	return string(b), err
}

// The whole host side over a real SSH transport: the API socket, published ports following events, the
// pid file, and recovery after the link is cut.
func TestHostagent(t *testing.T) {
	r := newRig(t)
	stop := r.start(t, r.cfg)
	ctx := context.Background()

	cl := apiClient(t, r.apiSock)
	if _, err := cl.Ping(ctx, client.PingOptions{}); err != nil {
		t.Fatalf("ping through docker.sock: %v", err)
	}
	if p, err := daemon.ReadPIDFile(r.cfg.PIDFile); err != nil || p.PID != os.Getpid() {
		t.Fatalf("pid file: %+v %v", p, err)
	}
	if err := Run(ctx, r.cfg); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second hostagent: %v", err)
	}

	target, hp := wiretest.Echo(t).Port, freePort(t)
	// Wait for the event subscription, then start a container.
	waitFor(t, func() bool { r.engine.mu.Lock(); defer r.engine.mu.Unlock(); return len(r.engine.subs) > 0 })
	r.engine.run("c1", map[string]string{strconv.Itoa(target) + "/tcp": strconv.Itoa(hp)}, true)
	addr := fmt.Sprintf("127.0.0.1:%d", hp)
	waitFor(t, func() bool { got, err := echo(addr, "hello"); return err == nil && got == "hello" })

	// Cut the transport: new connections work again once the client has reconnected.
	r.cut()
	waitFor(t, func() bool { got, err := echo(addr, "again"); return err == nil && got == "again" })
	if _, err := cl.Ping(ctx, client.PingOptions{}); err != nil {
		t.Fatalf("ping after reconnect: %v", err)
	}

	// The container dies: the host listener goes.
	waitFor(t, func() bool { r.engine.mu.Lock(); defer r.engine.mu.Unlock(); return len(r.engine.subs) > 1 })
	r.engine.run("c1", nil, false)
	waitFor(t, func() bool { _, err := net.DialTimeout("tcp", addr, time.Second); return err != nil })

	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, f := range []string{r.apiSock, r.cfg.PIDFile} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s left after stop", f)
		}
	}
}

// A wrong pinned host key: the API socket answers nothing and no request reaches the engine.
func TestHostagentWrongHostKey(t *testing.T) {
	r := newRig(t)
	other, _, _, err := transport.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := r.cfg
	cfg.HostKey = other.PublicKey()
	r.start(t, cfg)
	cl := apiClient(t, r.apiSock)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := cl.Ping(ctx, client.PingOptions{}); err == nil {
		t.Fatal("ping succeeded through an agent with the wrong host key")
	}
	if n := r.engine.requests.Load(); n != 0 {
		t.Fatalf("%d requests reached the engine", n)
	}
}
