package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// writeTree creates files ("name": "content"), dirs ("name/": "") and
// symlinks ("name@": "target") below root.
func writeTree(t *testing.T, root string, tree map[string]string) {
	t.Helper()
	names := make([]string, 0, len(tree))
	for n := range tree {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := tree[n]
		switch {
		case n[len(n)-1] == '/':
			if err := os.MkdirAll(filepath.Join(root, n), 0o755); err != nil {
				t.Fatal(err)
			}
		case n[len(n)-1] == '@':
			p := filepath.Join(root, n[:len(n)-1])
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.Symlink(v, p); err != nil {
				t.Fatal(err)
			}
		default:
			p := filepath.Join(root, n)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// listTree lists root as "name" (files: "name=content", dirs "name/",
// symlinks "name@target").
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			tgt, _ := os.Readlink(p)
			out = append(out, rel+"@"+tgt)
		case d.IsDir():
			out = append(out, rel+"/")
		case d.Type().IsRegular():
			out = append(out, rel+"="+readFile(t, p))
		default:
			out = append(out, rel+"?"+d.Type().String())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWhiteoutApply(t *testing.T) {
	lower := map[string]string{
		"a/x":          "lower",
		"a/y":          "lower",
		"b/deep/f":     "lower",
		"o/lower1":     "lower",
		"o/sub/lower2": "lower",
		"o/sub2/lower": "lower",
		"o/sub3/":      "",
		"p/lower":      "lower",
		"keep":         "lower",
	}
	layer := buildTar(t,
		file("a/.wh.x", ""),
		file(".wh.b", ""),
		file(".wh.missing", ""),
		file("nodir/.wh.x", ""),
		// Entries of the same layer before the opaque marker survive it.
		file("o/new1", "layer"),
		file("o/sub2/f", "layer"),
		dir("o/sub3/"),
		file("o/.wh..wh..opq", ""),
		file("o/new2", "layer"),
		file("o/sub/new3", "layer"),
		// An opaque dir the lower layers do not have.
		file("q/.wh..wh..opq", ""),
		file("q/f", "layer"),
		// An AUFS metadata entry is ignored.
		file(".wh..wh.plnk/123", ""),
	)
	for _, rm := range resolveModes {
		t.Run(rm.name, func(t *testing.T) {
			s := newSandbox(t)
			writeTree(t, s.root, lower)
			if _, err := doApply(s.root, layer, unprivileged, rm.mode); err != nil {
				t.Fatal(err)
			}
			want := []string{
				"a/", "a/y=lower",
				"keep=lower",
				"o/", "o/new1=layer", "o/new2=layer", "o/sub/", "o/sub/new3=layer", "o/sub2/", "o/sub2/f=layer", "o/sub3/",
				"p/", "p/lower=lower",
				"q/", "q/f=layer",
			}
			if got := listTree(t, s.root); !slices.Equal(got, want) {
				t.Fatalf("tree:\n got %q\nwant %q", got, want)
			}
		})
	}
}

func TestWhiteoutLiteral(t *testing.T) {
	s := newSandbox(t)
	writeTree(t, s.root, map[string]string{"x": "lower", "o/old": "lower"})
	layer := buildTar(t, file(".wh.x", "a file"), file("o/.wh..wh..opq", "another"), file(".wh..wh.plnk/1", "aufs"))
	opts := unprivileged
	opts.Whiteouts = WhiteoutLiteral
	if _, err := doApply(s.root, layer, opts, resolveAuto); err != nil {
		t.Fatal(err)
	}
	want := []string{".wh..wh.plnk/", ".wh..wh.plnk/1=aufs", ".wh.x=a file", "o/", "o/.wh..wh..opq=another", "o/old=lower", "x=lower"}
	if got := listTree(t, s.root); !slices.Equal(got, want) {
		t.Fatalf("tree:\n got %q\nwant %q", got, want)
	}
}

func TestOpaqueRoot(t *testing.T) {
	s := newSandbox(t)
	writeTree(t, s.root, map[string]string{"old": "lower", "d/old": "lower"})
	layer := buildTar(t, file("new", "layer"), file(".wh..wh..opq", ""), file("d/new", "layer"))
	if _, err := doApply(s.root, layer, unprivileged, resolveAuto); err != nil {
		t.Fatal(err)
	}
	want := []string{"d/", "d/new=layer", "new=layer"}
	if got := listTree(t, s.root); !slices.Equal(got, want) {
		t.Fatalf("tree: got %q, want %q", got, want)
	}
}

func TestOverwrite(t *testing.T) {
	s := newSandbox(t)
	writeTree(t, s.root, map[string]string{
		"file-to-dir":      "lower",
		"dir-to-file/x":    "lower",
		"dir-kept/x":       "lower",
		"link-to-file@":    "dir-kept",
		"file-to-link":     "lower",
		"dir-to-link/a/b":  "lower",
		"file-overwritten": "lower",
	})
	layer := buildTar(t,
		dir("file-to-dir/"),
		file("dir-to-file", "layer"),
		dir("dir-kept/").withMode(0o750),
		file("link-to-file", "layer"),
		symlink("file-to-link", "target"),
		symlink("dir-to-link", "target"),
		file("file-overwritten", "layer").withMode(0o600),
	)
	for _, rm := range resolveModes {
		t.Run(rm.name, func(t *testing.T) {
			if _, err := doApply(s.root, layer, unprivileged, rm.mode); err != nil {
				t.Fatal(err)
			}
			want := []string{
				"dir-kept/", "dir-kept/x=lower",
				"dir-to-file=layer",
				"dir-to-link@target",
				"file-overwritten=layer",
				"file-to-dir/",
				"file-to-link@target",
				"link-to-file=layer",
			}
			if got := listTree(t, s.root); !slices.Equal(got, want) {
				t.Fatalf("tree:\n got %q\nwant %q", got, want)
			}
			if fi, _ := os.Stat(filepath.Join(s.root, "dir-kept")); fi.Mode().Perm() != 0o750 {
				t.Errorf("dir-kept mode %v, want 0750", fi.Mode())
			}
			if fi, _ := os.Stat(filepath.Join(s.root, "file-overwritten")); fi.Mode().Perm() != 0o600 {
				t.Errorf("file-overwritten mode %v, want 0600", fi.Mode())
			}
		})
	}
}

func TestLinksAndMetadata(t *testing.T) {
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	subsec := time.Date(2002, 2, 3, 4, 5, 6, 789, time.UTC)
	layer := buildTar(t,
		dir("d/").withTime(old).withMode(0o751),
		file("d/f", "content").withTime(old).withMode(0o640),
		hardlink("d/h", "d/f"),
		hardlink("d/h2", "/d/h"),
		symlink("d/abs", "/etc/passwd").withTime(old),
		symlink("d/rel", "../d/f"),
		dir("ro/").withMode(0o555).withTime(old),
		file("ro/f", "in a read-only dir").withMode(0o444),
		dir("ro/sub/").withMode(0o500),
		file("ro/sub/g", "deeper"),
		tarEntry{name: "fifo", typ: tar.TypeFifo, mode: 0o620},
		file("ns", "").withTime(subsec).withPAX("comment", "PAX keeps nanoseconds"),
		dir("./").withMode(0o711).withTime(old),
		// A child directory listed before its unsearchable parent.
		dir("locked/inner/").withMode(0o755),
		dir("locked/").withMode(0o000),
	)
	for _, rm := range resolveModes {
		t.Run(rm.name, func(t *testing.T) {
			s := newSandbox(t)
			opts := Options{IgnoreOwnership: true, IgnoreXattrs: true}
			st, err := doUnpack(s.dst, layer, opts, rm.mode)
			if err != nil {
				t.Fatal(err)
			}
			if st.Entries != 15 || st.Bytes != int64(len("content")+len("in a read-only dir")+len("deeper")) {
				t.Errorf("stats %+v", st)
			}
			var fst, hst, h2st unix.Stat_t
			unix.Lstat(filepath.Join(s.dst, "d/f"), &fst)
			unix.Lstat(filepath.Join(s.dst, "d/h"), &hst)
			unix.Lstat(filepath.Join(s.dst, "d/h2"), &h2st)
			if fst.Ino != hst.Ino || fst.Ino != h2st.Ino || fst.Nlink != 3 {
				t.Errorf("hardlinks: inodes %d %d %d nlink %d", fst.Ino, hst.Ino, h2st.Ino, fst.Nlink)
			}
			for p, want := range map[string]os.FileMode{
				".":        os.ModeDir | 0o711,
				"d":        os.ModeDir | 0o751,
				"d/f":      0o640,
				"ro":       os.ModeDir | 0o555,
				"ro/f":     0o444,
				"ro/sub":   os.ModeDir | 0o500,
				"fifo":     os.ModeNamedPipe | 0o620,
				"d/abs":    os.ModeSymlink | 0o777,
				"ro/sub/g": 0o644,
				"locked":   os.ModeDir,
			} {
				fi, err := os.Lstat(filepath.Join(s.dst, p))
				if err != nil || fi.Mode() != want {
					t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode(), err, want)
				}
			}
			for _, p := range []string{".", "d", "d/f", "ro", "d/abs"} {
				fi, _ := os.Lstat(filepath.Join(s.dst, p))
				if !fi.ModTime().Equal(old) {
					t.Errorf("%s: mtime %v, want %v (directories after their entries)", p, fi.ModTime(), old)
				}
			}
			if fi, _ := os.Lstat(filepath.Join(s.dst, "ns")); !fi.ModTime().Equal(subsec) {
				t.Errorf("ns: mtime %v, want %v", fi.ModTime(), subsec)
			}
			if got, _ := os.Readlink(filepath.Join(s.dst, "d/abs")); got != "/etc/passwd" {
				t.Errorf("d/abs -> %q", got)
			}
			if got := readFile(t, filepath.Join(s.dst, "d/rel")); got != "content" {
				t.Errorf("d/rel reads %q", got)
			}
		})
	}
}

func TestHardlinkErrors(t *testing.T) {
	tests := []struct {
		name    string
		entries []tarEntry
		wantErr error
	}{
		{"missing target", []tarEntry{hardlink("h", "nope")}, fs.ErrNotExist},
		{"directory target", []tarEntry{dir("d/"), hardlink("h", "d")}, ErrUnsupported},
		{"self link", []tarEntry{file("f", "x"), hardlink("f", "f")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			_, err := doApply(s.root, buildTar(t, tt.entries...), unprivileged, resolveAuto)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestDevicesSkippedOrRefused(t *testing.T) {
	layer := buildTar(t,
		tarEntry{name: "null", typ: tar.TypeChar, major: 1, minor: 3, mode: 0o666},
		tarEntry{name: "loop0", typ: tar.TypeBlock, major: 7, minor: 0, mode: 0o660},
		tarEntry{name: "fifo", typ: tar.TypeFifo, mode: 0o600},
		file("after", "x"),
	)
	s := newSandbox(t)
	st, err := doUnpack(s.dst, layer, unprivileged, resolveAuto)
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != 4 {
		t.Errorf("entries %d, want 4", st.Entries)
	}
	if got := listTree(t, s.dst); !slices.Equal(got, []string{"after=x"}) {
		t.Fatalf("tree %q, want only after", got)
	}
	if os.Geteuid() == 0 {
		return // the root-tagged tests cover mknod
	}
	_, err = doUnpack(filepath.Join(s.work, "dst2"), layer, Options{IgnoreOwnership: true}, resolveAuto)
	if !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("unprivileged mknod: err = %v, want permission error", err)
	}
	requireMissing(t, filepath.Join(s.work, "dst2"))
}

// userXattrsSupported probes whether the test filesystem takes user.* xattrs.
func userXattrsSupported(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "xattr-probe")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(p)
	if err := unix.Setxattr(p, "user.probe", []byte("1"), 0); err != nil {
		t.Skipf("filesystem of %s does not take user.* xattrs: %v", dir, err)
	}
}

func TestXattrs(t *testing.T) {
	s := newSandbox(t)
	userXattrsSupported(t, s.work)
	layer := buildTar(t,
		dir("d/").withPAX("SCHILY.xattr.user.dir", "dv"),
		file("d/f", "x").withPAX("SCHILY.xattr.user.a", "1").withPAX("SCHILY.xattr.user.b", "two"),
		// overlayfs attributes in PAX records are dropped, never applied
		// (unprivileged, applying it would fail with EPERM).
		file("o", "x").withPAX("SCHILY.xattr.trusted.overlay.redirect", "/etc").withPAX("SCHILY.xattr.user.o", "kept"),
	)
	for _, rm := range resolveModes {
		t.Run(rm.name, func(t *testing.T) {
			dst := filepath.Join(s.work, "dst-"+rm.name)
			if _, err := doUnpack(dst, layer, Options{IgnoreOwnership: true}, rm.mode); err != nil {
				t.Fatal(err)
			}
			for p, want := range map[string]string{
				"d":   "user.dir=dv",
				"d/f": "user.a=1,user.b=two",
				"o":   "user.o=kept",
			} {
				if got := listUserXattrs(filepath.Join(dst, p)); got != want {
					t.Errorf("%s xattrs %q, want %q", p, got, want)
				}
			}
			// IgnoreXattrs drops them all.
			dst2 := dst + "-ignored"
			if _, err := doUnpack(dst2, layer, unprivileged, rm.mode); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"d", "d/f", "o"} {
				if got := listUserXattrs(filepath.Join(dst2, p)); got != "" {
					t.Errorf("IgnoreXattrs: %s has %q", p, got)
				}
			}
		})
	}
}

func TestBudgets(t *testing.T) {
	big := string(bytes.Repeat([]byte("x"), 1000))
	tests := []struct {
		name    string
		entries []tarEntry
		opts    Options
	}{
		{"one file over bytes", []tarEntry{dir("d/"), file("d/ok", "small"), file("d/big", big)}, Options{MaxBytes: 500}},
		{"sum over bytes", []tarEntry{file("a", big), file("b", big), file("c", big)}, Options{MaxBytes: 2500}},
		{"entries", []tarEntry{dir("a/"), dir("b/"), dir("c/"), dir("d/")}, Options{MaxEntries: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			opts := tt.opts
			opts.IgnoreOwnership, opts.SkipDevices, opts.IgnoreXattrs = true, true, true
			st, err := doUnpack(s.dst, buildTar(t, tt.entries...), opts, resolveAuto)
			if !errors.Is(err, ErrBudget) {
				t.Fatalf("err = %v, want ErrBudget", err)
			}
			requireMissing(t, s.dst)
			if got := workEntries(t, s); !slices.Equal(got, []string{"root"}) {
				t.Fatalf("partial output left: %v", got)
			}
			if opts.MaxBytes > 0 && st.Bytes > opts.MaxBytes {
				t.Fatalf("wrote %d bytes over the budget of %d", st.Bytes, opts.MaxBytes)
			}
			// Within budget the same tar extracts.
			opts.MaxBytes, opts.MaxEntries = 0, 0
			if _, err := doUnpack(s.dst, buildTar(t, tt.entries...), opts, resolveAuto); err != nil {
				t.Fatalf("default budget: %v", err)
			}
		})
	}
}

func TestUnpackRefusesExistingDst(t *testing.T) {
	s := newSandbox(t)
	if _, err := doUnpack(s.root, buildTar(t, file("f", "x")), unprivileged, resolveAuto); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("err = %v, want ErrExist", err)
	}
	if got := listTree(t, s.root); len(got) != 0 {
		t.Fatalf("existing dst changed: %q", got)
	}
}

func TestUnpackTruncatedTar(t *testing.T) {
	s := newSandbox(t)
	data := buildTar(t, file("a", "aaaa"), file("b", string(bytes.Repeat([]byte("b"), 5000))))
	if _, err := doUnpack(s.dst, data[:2048], unprivileged, resolveAuto); err == nil {
		t.Fatal("truncated tar: no error")
	}
	requireMissing(t, s.dst)
	if got := workEntries(t, s); !slices.Equal(got, []string{"root"}) {
		t.Fatalf("partial output left: %v", got)
	}
}

// cancelAfter cancels a context once n bytes have been read through it.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= n; c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestContextCancel(t *testing.T) {
	var entries []tarEntry
	for i := range 20 {
		entries = append(entries, file(fmt.Sprintf("f%02d", i), "content"))
	}
	data := buildTar(t, entries...)
	t.Run("before", func(t *testing.T) {
		s := newSandbox(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := Unpack(ctx, s.dst, bytes.NewReader(data), unprivileged)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want Canceled", err)
		}
		requireMissing(t, s.dst)
	})
	t.Run("during", func(t *testing.T) {
		s := newSandbox(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// Small reads so that the cancel lands after a few entries.
		r := &cancelAfter{r: io.LimitReader(bytes.NewReader(data), int64(len(data))), n: 4096, cancel: cancel}
		st, err := Apply(ctx, s.root, &smallReader{r: r, max: 512}, unprivileged)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want Canceled", err)
		}
		if st.Entries == 0 || st.Entries >= 20 {
			t.Fatalf("entries %d, want some but not all", st.Entries)
		}
	})
}

type smallReader struct {
	r   io.Reader
	max int
}

func (s *smallReader) Read(p []byte) (int, error) {
	if len(p) > s.max {
		p = p[:s.max]
	}
	return s.r.Read(p)
}

func TestNonRootOwnershipRefused(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can chown: this checks the unprivileged error path")
	}
	s := newSandbox(t)
	_, err := doUnpack(s.dst, buildTar(t, file("f", "x").withOwner(0, 0)), Options{SkipDevices: true}, resolveAuto)
	if !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("err = %v, want a permission error", err)
	}
	requireMissing(t, s.dst)
}

func BenchmarkUnpack(b *testing.B) {
	var entries []tarEntry
	body := string(bytes.Repeat([]byte("0123456789abcdef"), 64)) // 1 KiB
	for d := range 40 {
		entries = append(entries, dir(fmt.Sprintf("d%02d/", d)))
		for f := range 50 {
			entries = append(entries, file(fmt.Sprintf("d%02d/f%02d", d, f), body))
		}
	}
	data := buildTar(b, entries...)
	base := b.TempDir()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := Unpack(context.Background(), filepath.Join(base, fmt.Sprint(i)), bytes.NewReader(data), unprivileged); err != nil {
			b.Fatal(err)
		}
	}
}
