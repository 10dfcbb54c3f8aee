package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func tarNames(t *testing.T, data []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		n := h.Name
		switch h.Typeflag {
		case tar.TypeSymlink:
			n += "@" + h.Linkname
		case tar.TypeLink:
			n += "=>" + h.Linkname
		}
		names = append(names, n)
	}
}

func TestWriteTarRoundTrip(t *testing.T) {
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	src := buildTar(t,
		dir("tree/").withMode(0o750).withTime(old),
		dir("tree/sub/").withMode(0o700).withTime(old),
		file("tree/sub/f", "hello").withMode(0o640).withTime(old),
		hardlink("tree/h", "tree/sub/f"),
		symlink("tree/abs", "/etc/passwd").withTime(old),
		symlink("tree/rel", "sub/f").withTime(old),
		file("tree/exec", "#!/bin/sh\n").withMode(0o755).withTime(old),
		tarEntry{name: "tree/fifo", typ: tar.TypeFifo, mode: 0o600, mtime: old},
		dir("tree/ro/").withMode(0o555).withTime(old),
		file("tree/ro/f", "ro").withMode(0o444).withTime(old),
		file("tree/empty", "").withTime(old),
	)
	opts := Options{IgnoreOwnership: true, IgnoreXattrs: true}
	for _, rm := range resolveModes {
		t.Run(rm.name, func(t *testing.T) {
			s := newSandbox(t)
			if _, err := doUnpack(s.dst, src, opts, rm.mode); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := writeTar(context.Background(), &out, s.dst, "/tree", rm.mode); err != nil {
				t.Fatal(err)
			}
			names := tarNames(t, out.Bytes())
			if names[0] != "tree/" || !slices.Contains(names, "tree/sub/f=>tree/h") && !slices.Contains(names, "tree/h=>tree/sub/f") {
				t.Fatalf("entries %q: want tree/ first and one hardlink", names)
			}
			again := filepath.Join(s.work, "again")
			if _, err := doUnpack(again, out.Bytes(), opts, rm.mode); err != nil {
				t.Fatal(err)
			}
			want := describeTree(t, filepath.Join(s.dst, "tree"), nil)
			got := describeTree(t, filepath.Join(again, "tree"), nil)
			if d := diffTrees(want, got); d != "" {
				t.Fatalf("round trip differs:\n%s", d)
			}
		})
	}
}

func TestWriteTarSingleFileAndRoot(t *testing.T) {
	s := newSandbox(t)
	writeTree(t, s.root, map[string]string{"etc/hosts": "127.0.0.1 localhost", "l@": "etc"})
	tests := []struct {
		path string
		want []string
	}{
		{"/etc/hosts", []string{"hosts"}},
		{"etc/hosts", []string{"hosts"}},
		{"/l/hosts", []string{"hosts"}},    // parent symlink followed inside root
		{"/l", []string{"l@etc"}},          // final symlink kept
		{"/l/", []string{"l/", "l/hosts"}}, // trailing slash follows it
		{"/", []string{"./", "./etc/", "./etc/hosts", "./l@etc"}},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		if err := WriteTar(context.Background(), &out, s.root, tt.path); err != nil {
			t.Errorf("WriteTar(%q): %v", tt.path, err)
			continue
		}
		if got := tarNames(t, out.Bytes()); !slices.Equal(got, tt.want) {
			t.Errorf("WriteTar(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
	if err := WriteTar(context.Background(), io.Discard, s.root, "/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing path: err = %v, want ErrNotExist", err)
	}
}

func TestWriteTarEscapes(t *testing.T) {
	for _, rm := range resolveModes {
		t.Run(rm.name, func(t *testing.T) {
			s := newSandbox(t)
			writeTree(t, s.root, map[string]string{
				"abs@":     s.victim,
				"rel@":     "../../victim",
				"deep@":    strings.Repeat("../", 20) + s.victim[1:],
				"file@":    s.victimFile,
				"dir/in@":  s.victim,
				"dir/ok":   "inside",
				"dir/up@":  "..",
				"hostfile": "inside",
			})
			paths := []string{
				"/abs/passwd", "/abs/", "/abs/.", "/rel/passwd", "/rel/", "/deep/passwd", "/deep/etc/",
				"/file/", "/dir/in/passwd", "/dir/up/abs/passwd", "../../victim/passwd", "/../victimfile",
				s.victim + "/passwd", "/abs", "/dir", "/",
			}
			for _, p := range paths {
				var out bytes.Buffer
				err := writeTar(context.Background(), &out, s.root, p, rm.mode)
				if bytes.Contains(out.Bytes(), []byte(victimSecret)) {
					t.Errorf("WriteTar(%q) read the victim (err %v)", p, err)
				}
				if err == nil {
					for _, n := range tarNames(t, out.Bytes()) {
						if strings.Contains(n, "passwd") || strings.Contains(n, "shadow") {
							t.Errorf("WriteTar(%q) has entry %q from outside the root", p, n)
						}
					}
				}
			}
		})
	}
}

func TestWriteTarCancel(t *testing.T) {
	s := newSandbox(t)
	writeTree(t, s.root, map[string]string{"a": "1", "b": "2"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WriteTar(ctx, io.Discard, s.root, "/"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}
}
