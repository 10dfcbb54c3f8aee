package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/urfave/cli/v2"
)

func TestParsePublish(t *testing.T) {
	cases := []struct {
		spec    string
		port    string
		hostIP  string
		hostPts []string
		wantErr bool
	}{
		{spec: "80", port: "80/tcp", hostPts: []string{""}},
		{spec: "8080:80", port: "80/tcp", hostPts: []string{"8080"}},
		{spec: "127.0.0.1:9090:80/udp", port: "80/udp", hostIP: "127.0.0.1", hostPts: []string{"9090"}},
		{spec: "127.0.0.1::80", port: "80/tcp", hostIP: "127.0.0.1", hostPts: []string{""}},
		{spec: "[::1]:8080:80", port: "80/tcp", hostIP: "::1", hostPts: []string{"8080"}},
		{spec: "8000-8001:80-81", port: "81/tcp", hostPts: []string{"8001"}},
		{spec: "x:80", wantErr: true},
		{spec: "1.2.3:80:80", wantErr: true},
		{spec: "80:70000", wantErr: true},
		{spec: "8000-8002:80-81", wantErr: true},
		{spec: "a:b:c:d", wantErr: true},
	}
	for _, tc := range cases {
		exposed, bindings, err := parsePublish([]string{tc.spec})
		if tc.wantErr {
			if err == nil {
				t.Errorf("%q: want an error", tc.spec)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.spec, err)
			continue
		}
		p := network.MustParsePort(tc.port)
		if _, ok := exposed[p]; !ok {
			t.Errorf("%q: %s not exposed: %v", tc.spec, tc.port, exposed)
		}
		var got []string
		for _, b := range bindings[p] {
			got = append(got, b.HostPort)
			ip := ""
			if b.HostIP.IsValid() {
				ip = b.HostIP.String()
			}
			if ip != tc.hostIP {
				t.Errorf("%q: host ip %q, want %q", tc.spec, ip, tc.hostIP)
			}
		}
		if !slices.Equal(got, tc.hostPts) {
			t.Errorf("%q: host ports %v, want %v", tc.spec, got, tc.hostPts)
		}
	}
}

func TestParseVolumesAndEnv(t *testing.T) {
	got, err := parseVolumes([]string{"./data:/data:ro", "/abs:/x"}, "/home/u/proj")
	if err != nil || !slices.Equal(got, []string{"/home/u/proj/data:/data:ro", "/abs:/x"}) {
		t.Fatalf("volumes: %v %v", got, err)
	}
	for _, bad := range []string{"named:/data", "/a", "/a:rel", "/a:/b:ro:x", ":/b"} {
		if _, err := parseVolumes([]string{bad}, "/"); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
	env := expandEnv([]string{"A=1", "HOMEISH", "UNSET", "B="}, func(k string) (string, bool) {
		if k == "HOMEISH" {
			return "/h", true
		}
		return "", false
	})
	if !slices.Equal(env, []string{"A=1", "HOMEISH=/h", "B="}) {
		t.Fatalf("env: %v", env)
	}
}

func TestParseRestart(t *testing.T) {
	for in, want := range map[string]container.RestartPolicy{
		"no":           {Name: "no"},
		"always":       {Name: "always"},
		"on-failure":   {Name: "on-failure"},
		"on-failure:3": {Name: "on-failure", MaximumRetryCount: 3},
	} {
		got, err := parseRestart(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v", in, got, err)
		}
	}
	for _, bad := range []string{"sometimes", "always:3", "on-failure:-1", "on-failure:x"} {
		if _, err := parseRestart(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

// createFor runs the real app on "run ARGS" and returns the request the
// run command would send.
func createFor(t *testing.T, getenv func(string) (string, bool), args ...string) (client.ContainerCreateOptions, error) {
	t.Helper()
	app := newApp()
	var req client.ContainerCreateOptions
	var reqErr error
	for _, cmd := range app.Commands {
		if cmd.Name == "run" {
			cmd.Action = func(c *cli.Context) error {
				req, reqErr = createRequest(c, "/cwd", getenv)
				return nil
			}
		}
	}
	app.Writer, app.ErrWriter = io.Discard, io.Discard
	if err := app.Run(append([]string{"berth", "run"}, args...)); err != nil {
		return req, err
	}
	return req, reqErr
}

func TestCreateRequest(t *testing.T) {
	req, err := createFor(t, func(string) (string, bool) { return "", false }, "--rm", "-i", "-e", "A=1", "-m", "64m", "--cpus", "1.5", "--pids-limit", "20",
		"-p", "8080:80", "-v", "./d:/d", "--name", "web", "--entrypoint", "", "-u", "1000:1000", "-w", "/srv",
		"img", "sh", "-c", "exit 3")
	if err != nil {
		t.Fatal(err)
	}
	cfg, hc := req.Config, req.HostConfig
	if cfg.Image != "img" || !slices.Equal(cfg.Cmd, []string{"sh", "-c", "exit 3"}) || cfg.Entrypoint == nil || len(cfg.Entrypoint) != 0 {
		t.Fatalf("config: %+v", cfg)
	}
	if !cfg.OpenStdin || !cfg.AttachStdin || !cfg.StdinOnce || cfg.User != "1000:1000" || cfg.WorkingDir != "/srv" || req.Name != "web" {
		t.Fatalf("config: %+v", cfg)
	}
	if !hc.AutoRemove || hc.Memory != 64<<20 || hc.NanoCPUs != 1.5e9 || *hc.PidsLimit != 20 || hc.Binds[0] != "/cwd/d:/d" {
		t.Fatalf("host config: %+v", hc)
	}
	if len(hc.PortBindings[network.MustParsePort("80/tcp")]) != 1 {
		t.Fatalf("ports: %+v", hc.PortBindings)
	}

	req, err = createFor(t, os.LookupEnv, "-d", "img")
	if err != nil || req.Config.Cmd != nil || req.Config.Entrypoint != nil || req.Config.AttachStdout {
		t.Fatalf("detached: %+v %v", req.Config, err)
	}
	for _, args := range [][]string{{"-m", "lots", "img"}, {"--cpus", "-1", "img"}, {"--rm", "--restart", "always", "img"}, {}} {
		if _, err := createFor(t, os.LookupEnv, args...); err == nil {
			t.Errorf("%v: want an error", args)
		}
	}
}

func TestContainerPath(t *testing.T) {
	for _, tc := range []struct {
		arg, ctr, path string
		in             bool
	}{
		{"web:/etc/hosts", "web", "/etc/hosts", true},
		{"web:", "web", "", true},
		{"/tmp/a:b", "", "/tmp/a:b", false},
		{"./x:y", "", "./x:y", false},
		{"file.txt", "", "file.txt", false},
	} {
		ctr, path, in := containerPath(tc.arg)
		if ctr != tc.ctr || path != tc.path || in != tc.in {
			t.Errorf("%q: %q %q %v", tc.arg, ctr, path, in)
		}
	}
	for in, want := range map[string][2]string{"/a/b": {"/a", "b"}, "/a": {"/", "a"}, "a": {".", "a"}, "/a/b/": {"/a", "b"}} {
		d, n := splitContainerPath(in)
		if d != want[0] || n != want[1] {
			t.Errorf("%q: %q %q", in, d, n)
		}
	}
}

type tarEntry struct {
	name, body, link string
	typ              byte
}

func makeTar(t *testing.T, entries ...tarEntry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Linkname: e.link, Size: int64(len(e.body))}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
			h.Size = 0
		}
		if e.typ == tar.TypeSymlink || e.typ == tar.TypeLink {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			io.WriteString(tw, e.body)
		}
	}
	tw.Close()
	return &buf
}

func TestExtractCopyStaysInside(t *testing.T) {
	base := t.TempDir()
	dst := filepath.Join(base, "dst")
	victim := filepath.Join(base, "victim")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, []byte("safe"), 0o644); err != nil {
		t.Fatal(err)
	}
	attacks := []*bytes.Buffer{
		makeTar(t, tarEntry{name: "../victim", body: "pwned", typ: tar.TypeReg}),
		makeTar(t, tarEntry{name: "/victim", body: "pwned", typ: tar.TypeReg}),
		makeTar(t, tarEntry{name: "esc", link: "..", typ: tar.TypeSymlink}, tarEntry{name: "esc/victim", body: "pwned", typ: tar.TypeReg}),
		makeTar(t, tarEntry{name: "lnk", link: victim, typ: tar.TypeSymlink}, tarEntry{name: "lnk", body: "pwned", typ: tar.TypeReg}),
		makeTar(t, tarEntry{name: "hl", link: "../victim", typ: tar.TypeLink}),
	}
	for i, tr := range attacks {
		_ = extractCopy(tr, "", dst) // refusing or confining are both fine; escaping is not
		if b, _ := os.ReadFile(victim); string(b) != "safe" {
			t.Fatalf("attack %d wrote outside the destination: %q", i, b)
		}
		entries, _ := os.ReadDir(base)
		if len(entries) != 2 {
			t.Fatalf("attack %d created files next to the destination: %v", i, entries)
		}
	}
}

func TestCopyRoundTrip(t *testing.T) {
	src := filepath.Join(t.TempDir(), "tree")
	must(t, os.MkdirAll(filepath.Join(src, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "sub", "f"), []byte("hello"), 0o640))
	must(t, os.Symlink("sub/f", filepath.Join(src, "link")))
	var buf bytes.Buffer
	must(t, writeCopyTar(&buf, src, ""))

	// Into an existing directory: keeps the name.
	into := t.TempDir()
	must(t, extractCopy(bytes.NewReader(buf.Bytes()), "tree", into))
	if b, err := os.ReadFile(filepath.Join(into, "tree", "sub", "f")); err != nil || string(b) != "hello" {
		t.Fatalf("into dir: %q %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(into, "tree", "link")); err != nil || l != "sub/f" {
		t.Fatalf("symlink: %q %v", l, err)
	}
	// To a new name: renames the top entry.
	renamed := filepath.Join(t.TempDir(), "copy")
	must(t, extractCopy(bytes.NewReader(buf.Bytes()), "tree", renamed))
	if st, err := os.Stat(filepath.Join(renamed, "sub", "f")); err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("renamed: %v %v", st, err)
	}
	// Upload renaming: entries start with the new name.
	buf.Reset()
	must(t, writeCopyTar(&buf, filepath.Join(src, "sub", "f"), "g"))
	tr := tar.NewReader(&buf)
	h, err := tr.Next()
	if err != nil || h.Name != "g" {
		t.Fatalf("upload name: %v %v", h, err)
	}
	if err := extractCopy(strings.NewReader(""), "x", filepath.Join(t.TempDir(), "no", "parent")); err == nil {
		t.Fatal("missing parent: want an error")
	}
}

func TestProgressPrinter(t *testing.T) {
	msgs := []jsonstream.Message{
		{ID: "aaa", Status: "Pulling fs layer"},
		{ID: "bbb", Status: "Pulling fs layer"},
		{ID: "aaa", Status: "Downloading", Progress: &jsonstream.Progress{Current: 50, Total: 100}},
		{ID: "aaa", Status: "Downloading", Progress: &jsonstream.Progress{Current: 100, Total: 100}},
		{ID: "aaa", Status: "Pull complete"},
		{Status: "Digest: sha256:abc"},
	}
	seq := func(yield func(jsonstream.Message, error) bool) {
		for _, m := range msgs {
			if !yield(m, nil) {
				return
			}
		}
	}
	var plain bytes.Buffer
	if err := newProgressPrinter(&plain, false).run(seq); err != nil {
		t.Fatal(err)
	}
	want := "aaa: Pulling fs layer\nbbb: Pulling fs layer\naaa: Downloading\naaa: Pull complete\nDigest: sha256:abc\n"
	if plain.String() != want {
		t.Fatalf("plain output:\n%s", plain.String())
	}
	var tty bytes.Buffer
	if err := newProgressPrinter(&tty, true).run(seq); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tty.String(), "\x1b[2A\r\x1b[2Kaaa: Downloading [=========================>") {
		t.Fatalf("terminal output: %q", tty.String())
	}
	failing := func(yield func(jsonstream.Message, error) bool) {
		yield(jsonstream.Message{Error: &jsonstream.Error{Message: "manifest unknown"}}, nil)
	}
	if err := newProgressPrinter(io.Discard, false).run(failing); err == nil || err.Error() != "manifest unknown" {
		t.Fatalf("stream error: %v", err)
	}
}

func TestInstanceHost(t *testing.T) {
	if got := instanceHost("/home/u/.berth", "default"); got != "unix:///home/u/.berth/default/docker.sock" {
		t.Fatal(got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
