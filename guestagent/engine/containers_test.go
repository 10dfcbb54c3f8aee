package engine

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"

	"github.com/berth-dev/berth/guestagent/runtime/container"
	"github.com/berth-dev/berth/guestagent/runtime/jsonlog"
)

// fakeContainers implements the lifecycle calls over a map; streaming
// calls (attach, exec) are covered by the root tests with the real manager
// and by platform/hcs's API test with the HCS service over a fake runtime.
type fakeContainers struct {
	noContainers
	mu      sync.Mutex
	byID    map[string]*container.Container
	created []container.CreateOptions
	killed  []syscall.Signal
	stopped []*time.Duration
	logs    []jsonlog.Entry
	events  chan container.Event
}

func newFakeContainers() *fakeContainers {
	return &fakeContainers{byID: map[string]*container.Container{}, events: make(chan container.Event, 16)}
}

func (f *fakeContainers) add(c *container.Container) { f.byID[c.ID] = c }

func (f *fakeContainers) Get(ref string) (*container.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, c := range f.byID {
		if id == ref || c.Name == "/"+ref || strings.HasPrefix(id, ref) {
			return c, nil
		}
	}
	return nil, fmt.Errorf("container %s: %w", ref, container.ErrNotFound)
}

func (f *fakeContainers) Create(ctx context.Context, opts container.CreateOptions) (*container.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, opts)
	c := &container.Container{ID: strings.Repeat("ab", 32), Name: "/" + opts.Name, Config: opts.Config, HostConfig: opts.HostConfig}
	f.byID[c.ID] = c
	return c, nil
}

func (f *fakeContainers) List(opts container.ListOptions) ([]*container.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*container.Container
	for _, c := range f.byID {
		if opts.All || c.State.Running {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b *container.Container) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (f *fakeContainers) Kill(ctx context.Context, ref string, sig syscall.Signal) error {
	c, err := f.Get(ref)
	if err != nil {
		return err
	}
	if !c.State.Running {
		return fmt.Errorf("kill %s: %w", ref, container.ErrNotRunning)
	}
	f.mu.Lock()
	f.killed = append(f.killed, sig)
	f.mu.Unlock()
	return nil
}

func (f *fakeContainers) Stop(ctx context.Context, ref string, t *time.Duration) error {
	c, err := f.Get(ref)
	if err != nil {
		return err
	}
	if !c.State.Running {
		return fmt.Errorf("stop %s: %w", ref, container.ErrNotModified)
	}
	f.mu.Lock()
	f.stopped = append(f.stopped, t)
	f.mu.Unlock()
	return nil
}

func (f *fakeContainers) Wait(ctx context.Context, ref string, cond string) (<-chan container.WaitResult, error) {
	if _, err := f.Get(ref); err != nil {
		return nil, err
	}
	ch := make(chan container.WaitResult, 1)
	ch <- container.WaitResult{ExitCode: 3}
	return ch, nil
}

func (f *fakeContainers) Logs(ctx context.Context, ref string, opts container.LogsOptions, fn func(jsonlog.Entry) error) error {
	for _, e := range f.logs {
		if (e.Stream == "stdout" && !opts.Stdout) || (e.Stream == "stderr" && !opts.Stderr) {
			continue
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeContainers) Subscribe() (<-chan container.Event, func()) { return f.events, func() {} }

func newContainerServer(t *testing.T, cs *fakeContainers) *httptest.Server {
	t.Helper()
	eng := New(Config{Version: "test", Images: newFakeImages(fakeImage("img", "img:latest")), Containers: cs})
	srv := httptest.NewServer(eng)
	t.Cleanup(func() { srv.Close(); eng.Close() })
	return srv
}

func TestCreateTranslatesDockerRequest(t *testing.T) {
	cs := newFakeContainers()
	srv := newContainerServer(t, cs)
	pids := int64(20)
	req := ctypes.CreateRequest{
		Config: &ctypes.Config{Image: "img", Cmd: []string{"sh"}, Entrypoint: []string{""}, Env: []string{"A=1"}, Tty: true, OpenStdin: true, Labels: map[string]string{"l": "v"}},
		HostConfig: &ctypes.HostConfig{
			Binds:         []string{"/src:/dst:ro"},
			AutoRemove:    true,
			PortBindings:  network.PortMap{network.MustParsePort("80/tcp"): {{HostPort: "8080"}}},
			RestartPolicy: ctypes.RestartPolicy{Name: "no"},
		},
	}
	req.HostConfig.Memory = 64 << 20
	req.HostConfig.NanoCPUs = 1e9
	req.HostConfig.PidsLimit = &pids
	body, _ := json.Marshal(req)
	resp, out := do(t, "POST", srv.URL+"/v1.50/containers/create?name=web", bytes.NewReader(body))
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, out)
	}
	var cr ctypes.CreateResponse
	if err := json.Unmarshal(out, &cr); err != nil || len(cr.ID) != 64 || cr.Warnings == nil {
		t.Fatalf("create response %s", out)
	}
	got := cs.created[0]
	if got.Name != "web" || got.Config.Entrypoint == nil || len(got.Config.Entrypoint) != 0 || !got.Config.Tty ||
		got.HostConfig.Memory != 64<<20 || *got.HostConfig.PidsLimit != 20 || !got.HostConfig.AutoRemove ||
		got.HostConfig.PortBindings["80/tcp"][0].HostPort != "8080" || got.HostConfig.Binds[0] != "/src:/dst:ro" {
		t.Fatalf("create options: %+v", got)
	}

	for _, tc := range []struct {
		body   string
		status int
		msg    string
	}{
		{`{"Image":"nosuch"}`, 404, "No such image: nosuch"},
		{`{}`, 400, "config cannot be empty"},
		{`{"Cmd":["sh"]}`, 400, "no image specified"},
		{`not json`, 400, "invalid JSON"},
		{`{"Image":"img","HostConfig":{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}}`, 400, "AutoRemove"},
		{`{"Image":"img","HostConfig":{"RestartPolicy":{"Name":"sometimes"}}}`, 400, "invalid restart policy"},
		{`{"Image":"img","HostConfig":{"Mounts":[{"Type":"volume","Target":"/x"}]}}`, 400, "Mounts"},
	} {
		resp, out := do(t, "POST", srv.URL+"/containers/create", strings.NewReader(tc.body))
		if resp.StatusCode != tc.status || !strings.Contains(string(out), tc.msg) {
			t.Errorf("%s: %d %s", tc.body, resp.StatusCode, out)
		}
	}
}

func runningContainer() *container.Container {
	return &container.Container{
		ID: strings.Repeat("cd", 32), Name: "/w", Image: "sha256:" + strings.Repeat("1", 64), ImageName: "img",
		Path: "httpd", Args: []string{"-f"}, Created: time.Now().Add(-time.Hour),
		Config:     container.Config{Image: "img", Labels: map[string]string{"app": "web"}},
		HostConfig: container.HostConfig{PortBindings: map[string][]container.PortBinding{"80/tcp": {{HostIP: "127.0.0.1", HostPort: "8080"}}}},
		State:      container.State{Status: container.StatusRunning, Running: true, Pid: 42, StartedAt: time.Now().Add(-3 * time.Minute)},
	}
}

func TestContainerListInspectAndLifecycle(t *testing.T) {
	cs := newFakeContainers()
	run := runningContainer()
	cs.add(run)
	cs.add(&container.Container{ID: strings.Repeat("ef", 32), Name: "/old", State: container.State{Status: container.StatusExited, ExitCode: 3, FinishedAt: time.Now().Add(-2 * time.Second)}})
	srv := newContainerServer(t, cs)

	_, out := do(t, "GET", srv.URL+"/containers/json", nil)
	var list []ctypes.Summary
	if err := json.Unmarshal(out, &list); err != nil || len(list) != 1 || list[0].Names[0] != "/w" || !strings.HasPrefix(list[0].Status, "Up 3 minutes") {
		t.Fatalf("list: %s", out)
	}
	if p := list[0].Ports; len(p) != 1 || p[0].PublicPort != 8080 || p[0].PrivatePort != 80 || p[0].IP.String() != "127.0.0.1" {
		t.Fatalf("ports: %+v", p)
	}
	_, out = do(t, "GET", srv.URL+"/containers/json?all=1", nil)
	list = nil
	_ = json.Unmarshal(out, &list)
	if len(list) != 2 || list[1].Status != "Exited (3) 2 seconds ago" {
		t.Fatalf("list all: %s", out)
	}

	resp, out := do(t, "GET", srv.URL+"/containers/w/json", nil)
	var ins ctypes.InspectResponse
	if err := json.Unmarshal(out, &ins); err != nil || resp.StatusCode != 200 {
		t.Fatalf("inspect: %d %s", resp.StatusCode, out)
	}
	if ins.ID != run.ID || ins.State.Pid != 42 || !ins.State.Running || ins.Config.Labels["app"] != "web" || len(ins.NetworkSettings.Ports) != 1 {
		t.Fatalf("inspect: %+v", ins)
	}
	resp, out = do(t, "GET", srv.URL+"/containers/nosuch/json", nil)
	if resp.StatusCode != 404 || !strings.Contains(string(out), "No such container: nosuch") {
		t.Fatalf("missing: %d %s", resp.StatusCode, out)
	}

	if resp, _ := do(t, "POST", srv.URL+"/containers/w/kill?signal=SIGHUP", nil); resp.StatusCode != 204 || cs.killed[0] != 1 {
		t.Fatalf("kill: %d %v", resp.StatusCode, cs.killed)
	}
	if resp, _ := do(t, "POST", srv.URL+"/containers/w/kill?signal=BOGUS", nil); resp.StatusCode != 400 {
		t.Fatalf("kill bogus: %d", resp.StatusCode)
	}
	if resp, out := do(t, "POST", srv.URL+"/containers/old/kill", nil); resp.StatusCode != 409 || !strings.Contains(string(out), "is not running") {
		t.Fatalf("kill stopped: %d %s", resp.StatusCode, out)
	}
	if resp, _ := do(t, "POST", srv.URL+"/containers/w/stop?t=3", nil); resp.StatusCode != 204 || *cs.stopped[0] != 3*time.Second {
		t.Fatalf("stop: %d", resp.StatusCode)
	}
	if resp, _ := do(t, "POST", srv.URL+"/containers/old/stop", nil); resp.StatusCode != 304 {
		t.Fatalf("stop stopped: %d", resp.StatusCode)
	}
	resp, out = do(t, "POST", srv.URL+"/containers/w/wait?condition=next-exit", nil)
	var wr ctypes.WaitResponse
	if err := json.Unmarshal(out, &wr); err != nil || resp.StatusCode != 200 || wr.StatusCode != 3 {
		t.Fatalf("wait: %d %s", resp.StatusCode, out)
	}
	if resp, _ := do(t, "POST", srv.URL+"/containers/w/wait?condition=whenever", nil); resp.StatusCode != 400 {
		t.Fatalf("bad condition: %d", resp.StatusCode)
	}
}

func TestLogsFraming(t *testing.T) {
	cs := newFakeContainers()
	cs.add(runningContainer())
	ts := time.Date(2026, 11, 30, 10, 0, 0, 5, time.UTC)
	cs.logs = []jsonlog.Entry{{Stream: "stdout", Time: ts, Line: []byte("out\n")}, {Stream: "stderr", Time: ts, Line: []byte("err\n")}}
	srv := newContainerServer(t, cs)

	resp, out := do(t, "GET", srv.URL+"/v1.50/containers/w/logs?stdout=1&stderr=1&timestamps=1", nil)
	if resp.Header.Get("Content-Type") != mediaMultiplexed {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	var o, e bytes.Buffer
	if _, err := stdcopy.StdCopy(&o, &e, bytes.NewReader(out)); err != nil {
		t.Fatal(err)
	}
	if o.String() != "2026-11-30T10:00:00.000000005Z out\n" || e.String() != "2026-11-30T10:00:00.000000005Z err\n" {
		t.Fatalf("demuxed %q %q", o.String(), e.String())
	}
	_, out = do(t, "GET", srv.URL+"/v1.50/containers/w/logs?stdout=1", nil)
	o.Reset()
	e.Reset()
	if _, err := stdcopy.StdCopy(&o, &e, bytes.NewReader(out)); err != nil || o.String() != "out\n" || e.Len() != 0 {
		t.Fatalf("stdout only: %q %q %v", o.String(), e.String(), err)
	}
	if resp, _ := do(t, "GET", srv.URL+"/containers/w/logs", nil); resp.StatusCode != 400 {
		t.Fatalf("no stream: %d", resp.StatusCode)
	}
}

func TestEventsStreamAndReplay(t *testing.T) {
	cs := newFakeContainers()
	srv := newContainerServer(t, cs)
	start := time.Now().Add(-time.Second)
	cs.events <- container.Event{Action: "create", ID: "c1", Time: time.Now(), Attributes: map[string]string{"name": "one"}}
	cs.events <- container.Event{Action: "start", ID: "c1", Time: time.Now(), Attributes: map[string]string{"name": "one"}}
	cs.events <- container.Event{Action: "start", ID: "c2", Time: time.Now(), Attributes: map[string]string{"name": "two"}}
	// Pull an image too: an image event.
	do(t, "POST", srv.URL+"/images/create?fromImage=x&tag=1", nil)

	waitForEvents := func(q string, n int) []events.Message {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			u := fmt.Sprintf("%s/events?since=%d&until=%d&%s", srv.URL, start.Unix(), time.Now().Add(time.Second).Unix(), q)
			_, out := do(t, "GET", u, nil)
			var msgs []events.Message
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				var m events.Message
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
					t.Fatalf("event line %q: %v", sc.Text(), err)
				}
				msgs = append(msgs, m)
			}
			if len(msgs) >= n || time.Now().After(deadline) {
				return msgs
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	all := waitForEvents("", 4)
	if len(all) != 4 {
		t.Fatalf("events: %+v", all)
	}
	f := url.QueryEscape(`{"container":{"one":true},"event":{"start":true}}`)
	got := waitForEvents("filters="+f, 1)
	if len(got) != 1 || got[0].Actor.ID != "c1" || got[0].Action != "start" || got[0].Type != events.ContainerEventType {
		t.Fatalf("filtered: %+v", got)
	}
	f = url.QueryEscape(`{"type":{"image":true}}`)
	if got := waitForEvents("filters="+f, 1); len(got) != 1 || got[0].Action != events.ActionPull {
		t.Fatalf("image events: %+v", got)
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]int{"KILL": 9, "sigterm": 15, "SIGHUP": 1, "2": 2, "RTMIN": 34, "RTMIN+3": 37, "RTMAX": 64} {
		got, err := parseSignal(in)
		if err != nil || int(got) != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "NOPE", "0", "65", "RTMIN+40", "RTMAX+1"} {
		if _, err := parseSignal(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestParseTimeAndDurations(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"1700000000":           time.Unix(1700000000, 0),
		"1700000000.5":         time.Unix(1700000000, 500000000),
		"10m":                  now.Add(-10 * time.Minute),
		"2026-11-30T10:00:00Z": time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC),
	} {
		got, err := parseTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	if _, err := parseTime("yesterday", now); err == nil {
		t.Error("want an error")
	}
	for d, want := range map[time.Duration]string{0: "Less than a second", time.Second: "1 second", 3 * time.Second: "3 seconds",
		90 * time.Second: "About a minute", 5 * time.Minute: "5 minutes", 90 * time.Minute: "About an hour", 5 * time.Hour: "5 hours", 72 * time.Hour: "3 days"} {
		if got := humanDuration(d); got != want {
			t.Errorf("%s: %q, want %q", d, got, want)
		}
	}
}

func TestRebaseTar(t *testing.T) {
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	for _, h := range []*tar.Header{
		{Name: "../../etc/passwd", Typeflag: tar.TypeReg, Size: 1, Uid: 1000, Gid: 1000, Mode: 0o644},
		{Name: "/abs", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "hard", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"},
	} {
		tw.WriteHeader(h)
		if h.Size > 0 {
			tw.Write([]byte("x"))
		}
	}
	tw.Close()
	var out bytes.Buffer
	if err := rebaseTar(&out, &in, "/tmp/dst", false); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&out)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name+"|"+h.Linkname)
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: owner %d:%d", h.Name, h.Uid, h.Gid)
		}
	}
	want := []string{"/tmp/dst/etc/passwd|", "/tmp/dst/abs|", "/tmp/dst/hard|/tmp/dst/etc/passwd"}
	if !slices.Equal(names, want) {
		t.Fatalf("names %v", names)
	}
}

func TestConcurrentRequests(t *testing.T) {
	cs := newFakeContainers()
	cs.add(runningContainer())
	cs.logs = []jsonlog.Entry{{Stream: "stdout", Time: time.Now(), Line: []byte("x\n")}}
	srv := newContainerServer(t, cs)
	paths := []struct{ method, path string }{
		{"GET", "/containers/json?all=1"}, {"GET", "/containers/w/json"}, {"GET", "/containers/w/logs?stdout=1"},
		{"GET", "/images/json"}, {"GET", "/info"}, {"GET", "/system/df"}, {"POST", "/images/create?fromImage=p&tag=1"},
		{"POST", "/containers/w/kill"}, {"POST", "/containers/w/exec"}, {"GET", "/_ping"},
	}
	var wg sync.WaitGroup
	errs := make(chan string, 400)
	for i := 0; i < 40; i++ {
		for _, p := range paths {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var body io.Reader
				if p.path == "/containers/w/exec" {
					body = strings.NewReader(`{"Cmd":["true"]}`)
				}
				resp, out := do(t, p.method, srv.URL+p.path, body)
				if resp.StatusCode >= 500 {
					errs <- fmt.Sprintf("%s %s: %d %s", p.method, p.path, resp.StatusCode, out)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
