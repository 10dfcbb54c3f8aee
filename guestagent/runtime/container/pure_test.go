package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestNormalizeName(t *testing.T) {
	for in, want := range map[string]string{"web": "/web", "/web": "/web", "a1_b.c-d": "/a1_b.c-d", "9x": "/9x", "a": "/a", "/w": "/w"} {
		if got, err := normalizeName(in); err != nil || got != want {
			t.Errorf("normalizeName(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "/", "-web", "_web", "we b", "web/x", "wéb", "//web"} {
		if _, err := normalizeName(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("normalizeName(%q) accepted", in)
		}
	}
}

func TestGeneratedNamesAndIDs(t *testing.T) {
	for i := 0; i < 100; i++ {
		n := generateName(i % 2)
		if _, err := normalizeName(n); err != nil || strings.Count(n, "_") != 1 {
			t.Fatalf("generated name %q: %v", n, err)
		}
		id := newID()
		if !isID(id) || strings.Trim(id[:12], "0123456789") == "" {
			t.Fatalf("id %q", id)
		}
	}
}

func TestRestartDecision(t *testing.T) {
	onFailure := RestartPolicy{Name: "on-failure", MaximumRetryCount: 3}
	for _, c := range []struct {
		name     string
		p        RestartPolicy
		code     int
		restarts int
		manual   bool
		ran      time.Duration
		prev     time.Duration
		want     bool
		delay    time.Duration
	}{
		{"no", RestartPolicy{}, 1, 0, false, 0, 0, false, 0},
		{"no explicit", RestartPolicy{Name: "no"}, 1, 0, false, 0, 0, false, 0},
		{"always first", RestartPolicy{Name: "always"}, 0, 0, false, time.Second, 0, true, 100 * time.Millisecond},
		{"always doubles", RestartPolicy{Name: "always"}, 0, 1, false, time.Second, 400 * time.Millisecond, true, 800 * time.Millisecond},
		{"always capped", RestartPolicy{Name: "always"}, 0, 9, false, time.Second, 50 * time.Second, true, time.Minute},
		{"reset after long run", RestartPolicy{Name: "unless-stopped"}, 0, 9, false, 10 * time.Second, 50 * time.Second, true, 100 * time.Millisecond},
		{"manual stop", RestartPolicy{Name: "always"}, 137, 0, true, 0, 0, false, 0},
		{"on-failure success", onFailure, 0, 0, false, 0, 0, false, 0},
		{"on-failure failure", onFailure, 2, 2, false, 0, 100 * time.Millisecond, true, 200 * time.Millisecond},
		{"on-failure exhausted", onFailure, 2, 3, false, 0, 0, false, 0},
		{"on-failure unlimited", RestartPolicy{Name: "on-failure"}, 2, 100, false, 0, 0, true, 100 * time.Millisecond},
	} {
		got, delay := restartDecision(c.p, c.code, c.restarts, c.manual, c.ran, c.prev)
		if got != c.want || delay != c.delay {
			t.Errorf("%s: restart=%v delay=%v, want %v %v", c.name, got, delay, c.want, c.delay)
		}
	}
}

func TestValidateRestartPolicy(t *testing.T) {
	good := []RestartPolicy{{}, {Name: "no"}, {Name: "always"}, {Name: "unless-stopped"}, {Name: "on-failure"}, {Name: "on-failure", MaximumRetryCount: 5}}
	for _, p := range good {
		if err := validateRestartPolicy(p, false); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
	bad := []RestartPolicy{{Name: "sometimes"}, {Name: "always", MaximumRetryCount: 1}, {Name: "on-failure", MaximumRetryCount: -1}}
	for _, p := range bad {
		if err := validateRestartPolicy(p, false); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v accepted", p)
		}
	}
	if err := validateRestartPolicy(RestartPolicy{Name: "always"}, true); !errors.Is(err, ErrInvalid) {
		t.Error("AutoRemove with always accepted")
	}
	if err := validateRestartPolicy(RestartPolicy{Name: "no"}, true); err != nil {
		t.Error(err)
	}
}

func TestStartErrorCode(t *testing.T) {
	for err, want := range map[error]int{
		fmt.Errorf("exec: %w", fs.ErrNotExist):                       127,
		errors.New(`exec "foo": executable file not found in $PATH`): 127,
		fmt.Errorf("exec: %w", fs.ErrPermission):                     126,
		errors.New("cgroup: device busy"):                            128,
	} {
		if got := startErrorCode(err); got != want {
			t.Errorf("startErrorCode(%v) = %d, want %d", err, got, want)
		}
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"SIGTERM": 15, "TERM": 15, "term": 15, "9": 9, "SIGKILL": 9, "SIGUSR1": 10, "SIGRTMIN": 34, "SIGRTMIN+3": 37, "RTMAX": 64} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "SIGFOO", "0", "65", "-1", "RTMIN+40"} {
		if _, err := ParseSignal(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSignal(%q) accepted", in)
		}
	}
	if s := stopSignal("", "SIGQUIT"); s != 3 {
		t.Errorf("image stop signal: %d", s)
	}
	if s := stopSignal("SIGINT", "SIGQUIT"); s != 2 {
		t.Errorf("own stop signal: %d", s)
	}
	if s := stopSignal("", ""); s != 15 {
		t.Errorf("default stop signal: %d", s)
	}
}

func TestResolvConfAndHosts(t *testing.T) {
	host := "# comment\nnameserver 127.0.0.53\nsearch example.com\noptions edns0\n"
	got := string(resolvConf([]byte(host), false))
	want := "# comment\nsearch example.com\noptions edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
	if got != want {
		t.Errorf("resolv.conf = %q, want %q", got, want)
	}
	host2 := "nameserver 10.0.0.1\nnameserver ::1\n"
	if got := string(resolvConf([]byte(host2), false)); got != "nameserver 10.0.0.1\n" {
		t.Errorf("resolv.conf = %q", got)
	}
	if got := string(resolvConf([]byte(host), true)); got != host {
		t.Errorf("host network resolv.conf = %q", got)
	}
	h := string(hostsFile("abc123", false, []byte("host file")))
	if !strings.HasPrefix(h, "127.0.0.1\tlocalhost\n") || !strings.Contains(h, "127.0.1.1\tabc123\n") {
		t.Errorf("hosts = %q", h)
	}
	if h := string(hostsFile("abc123", true, []byte("host file"))); h != "host file" {
		t.Errorf("host network hosts = %q", h)
	}
}

func TestParseBind(t *testing.T) {
	b, err := parseBind("/src:/dst:ro,rslave")
	if err != nil || b.Source != "/src" || b.Destination != "/dst" || !b.ReadOnly || b.Propagation != "rslave" {
		t.Fatalf("parseBind = %+v, %v", b, err)
	}
	if b, err := parseBind("/a:/b"); err != nil || b.ReadOnly {
		t.Fatalf("plain bind = %+v, %v", b, err)
	}
	for _, s := range []string{"vol:/data", "/a", "/a:b", "/a:/b:xx", "/a:/b:ro:x"} {
		if _, err := parseBind(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("parseBind(%q) accepted", s)
		}
	}
	if _, err := networkNamespace("container:x"); !errors.Is(err, ErrInvalid) {
		t.Error("container network mode accepted")
	}
	if ns, _ := networkNamespace("host"); ns != "host" {
		t.Error("host network mode")
	}
}

func TestMatchFilters(t *testing.T) {
	c := &Container{ID: "abcdef" + strings.Repeat("0", 58), Name: "/web-1", Image: "sha256:1234", ImageName: "nginx",
		Config: Config{Labels: map[string]string{"app": "web", "tier": ""}}, State: State{Status: StatusExited, ExitCode: 3}}
	for _, f := range []map[string][]string{
		nil, {"id": {"abc"}}, {"name": {"web"}}, {"name": {"/web-1"}}, {"status": {"running", "exited"}},
		{"label": {"app"}}, {"label": {"app=web"}, "exited": {"3"}}, {"ancestor": {"nginx"}}, {"label": {"tier="}},
	} {
		if ok, err := matchFilters(c, f); err != nil || !ok {
			t.Errorf("filters %v: %v %v", f, ok, err)
		}
	}
	for _, f := range []map[string][]string{
		{"id": {"abd"}}, {"name": {"db"}}, {"status": {"running"}}, {"label": {"app=db"}}, {"label": {"x"}}, {"exited": {"0"}},
	} {
		if ok, err := matchFilters(c, f); err != nil || ok {
			t.Errorf("filters %v matched: %v", f, err)
		}
	}
	for _, f := range []map[string][]string{{"bogus": {"x"}}, {"status": {"sleeping"}}, {"name": {"zzz"}, "bogus": {"1"}}} {
		if _, err := matchFilters(c, f); !errors.Is(err, ErrInvalid) {
			t.Errorf("filters %v: want ErrInvalid, got %v", f, err)
		}
	}
}

func TestOverlayData(t *testing.T) {
	layers := []string{"/s/layers/c", "/s/layers/b", "/s/layers/a"}
	got, err := overlayData(layers, "/c/1/upper", "/c/1/work", "")
	if err != nil || got != "lowerdir=/s/layers/c:/s/layers/b:/s/layers/a,upperdir=/c/1/upper,workdir=/c/1/work" {
		t.Fatalf("overlayData = %q, %v", got, err)
	}
	base := commonParent(layers)
	if base != "/s/layers" {
		t.Fatalf("commonParent = %q", base)
	}
	got, err = overlayData(layers, "/c/1/upper", "/c/1/work", base)
	if err != nil || got != "lowerdir=c:b:a,upperdir=/c/1/upper,workdir=/c/1/work" {
		t.Fatalf("relative overlayData = %q, %v", got, err)
	}
	if p := commonParent([]string{"/x/a/1", "/x/b/2"}); p != "/x" {
		t.Fatalf("commonParent = %q", p)
	}
	if p := commonParent([]string{"/ab/1", "/abc/2"}); p != "/" {
		t.Fatalf("commonParent = %q", p)
	}
	if _, err := overlayData([]string{"/a:b"}, "/u", "/w", ""); !errors.Is(err, ErrInvalid) {
		t.Fatal("colon in layer path accepted")
	}
}

func TestContainerRecordRoundTrip(t *testing.T) {
	timeout := 5
	pids := int64(100)
	c := &Container{
		ID: newID(), Name: "/x1", Image: "sha256:ab", ImageName: "busybox", Created: time.Now().UTC().Round(0),
		Path: "sh", Args: []string{"-c", "true"},
		Config: Config{Image: "busybox", Hostname: "h", Env: []string{"A=1"}, Cmd: []string{"sh"}, Entrypoint: []string{},
			Tty: true, OpenStdin: true, StdinOnce: true, Labels: map[string]string{"a": "b"}, StopSignal: "SIGINT", StopTimeout: &timeout},
		HostConfig: HostConfig{Binds: []string{"/a:/b"}, PortBindings: map[string][]PortBinding{"80/tcp": {{HostIP: "127.0.0.1", HostPort: "8080"}}},
			Memory: 1 << 20, PidsLimit: &pids, RestartPolicy: RestartPolicy{Name: "on-failure", MaximumRetryCount: 2}, NetworkMode: "none"},
		State:   State{Status: StatusExited, ExitCode: 137, OOMKilled: true, StartedAt: time.Now().UTC().Round(0), RestartCount: 2},
		LogPath: "/l",
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Container
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, &back) || !reflect.DeepEqual(c, c.clone()) {
		t.Fatalf("round trip:\n%+v\n%+v", c, &back)
	}
}

func TestClampRlimits(t *testing.T) {
	rls := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1048576, Soft: 1048576}, {Type: "RLIMIT_CORE", Hard: 5, Soft: 1}, {Type: "RLIMIT_X", Hard: 9, Soft: 9}}
	clampRlimits(rls, func(typ string) (uint64, bool) {
		switch typ {
		case "RLIMIT_NOFILE":
			return 20000, true
		case "RLIMIT_CORE":
			return 100, true
		}
		return 0, false
	})
	want := []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 20000, Soft: 20000}, {Type: "RLIMIT_CORE", Hard: 5, Soft: 1}, {Type: "RLIMIT_X", Hard: 9, Soft: 9}}
	if !reflect.DeepEqual(rls, want) {
		t.Fatalf("clamped %+v", rls)
	}
}
