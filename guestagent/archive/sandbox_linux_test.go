package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// sandbox is a temp dir holding a victim tree next to the extraction work
// dir: base/victim (dir), base/victimfile, base/work/root (the Apply root)
// and base/work/dst (the Unpack destination).
type sandbox struct {
	base, victim, victimFile, work, root, dst string
}

const victimSecret = "victim-secret-content"

func newSandbox(tb testing.TB) *sandbox {
	tb.Helper()
	base := tb.TempDir()
	s := &sandbox{
		base:       base,
		victim:     filepath.Join(base, "victim"),
		victimFile: filepath.Join(base, "victimfile"),
		work:       filepath.Join(base, "work"),
	}
	s.root = filepath.Join(s.work, "root")
	s.dst = filepath.Join(s.work, "dst")
	for _, d := range []string{s.victim, filepath.Join(s.victim, "etc"), s.root} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	for p, c := range map[string]string{
		filepath.Join(s.victim, "passwd"):        victimSecret,
		filepath.Join(s.victim, "etc", "shadow"): victimSecret,
		s.victimFile:                             victimSecret,
	} {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Cleanup(func() { makeWritable(base) })
	return s
}

// makeWritable lets the test's TempDir cleanup remove read-only trees when
// the tests run unprivileged.
func makeWritable(root string) {
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
}

// outside describes everything in the sandbox except the work dir.
func (s *sandbox) outside(tb testing.TB) map[string]string {
	tb.Helper()
	return describeTree(tb, s.base, func(rel string) bool { return rel == "work" })
}

// describeTree maps each path below root to a description of its type,
// mode, owner, size, link count, mtime, link target, xattrs and content hash.
func describeTree(tb testing.TB, root string, skip func(rel string) bool) map[string]string {
	tb.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if skip != nil && skip(rel) {
			return filepath.SkipDir
		}
		out[rel] = describe(tb, p, rel != "." && d.IsDir())
		return nil
	})
	if err != nil {
		tb.Fatalf("walk %s: %v", root, err)
	}
	return out
}

func describe(tb testing.TB, p string, withMtime bool) string {
	fi, err := os.Lstat(p)
	if err != nil {
		tb.Fatalf("lstat %s: %v", p, err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	desc := fmt.Sprintf("%v uid=%d gid=%d nlink=%d", fi.Mode(), st.Uid, st.Gid, st.Nlink)
	if withMtime || !fi.IsDir() {
		desc += fmt.Sprintf(" mtime=%d", fi.ModTime().UnixNano())
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		t, _ := os.Readlink(p)
		desc += " -> " + t
	case fi.Mode().IsRegular():
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatalf("read %s: %v", p, err)
		}
		h := sha256.Sum256(b)
		desc += fmt.Sprintf(" size=%d sha=%s", len(b), hex.EncodeToString(h[:8]))
	case fi.Mode()&(fs.ModeDevice|fs.ModeCharDevice) != 0:
		desc += fmt.Sprintf(" rdev=%d", st.Rdev)
	}
	if xs := listUserXattrs(p); xs != "" {
		desc += " xattrs=" + xs
	}
	return desc
}

func listUserXattrs(p string) string {
	buf := make([]byte, 4096)
	n, err := syscall.Listxattr(p, buf)
	if err != nil || n == 0 {
		return ""
	}
	var parts []string
	for _, name := range bytes.Split(buf[:n], []byte{0}) {
		if len(name) == 0 {
			continue
		}
		v := make([]byte, 4096)
		vn, err := syscall.Getxattr(p, string(name), v)
		if err != nil {
			continue
		}
		parts = append(parts, string(name)+"="+string(v[:vn]))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func diffTrees(before, after map[string]string) string {
	var b strings.Builder
	for k, v := range before {
		if w, ok := after[k]; !ok {
			fmt.Fprintf(&b, "removed %s (%s)\n", k, v)
		} else if w != v {
			fmt.Fprintf(&b, "changed %s: %s => %s\n", k, v, w)
		}
	}
	for k, w := range after {
		if _, ok := before[k]; !ok {
			fmt.Fprintf(&b, "added %s (%s)\n", k, w)
		}
	}
	return b.String()
}

// unprivileged are options an ordinary user can extract with.
var unprivileged = Options{IgnoreOwnership: true, SkipDevices: true, IgnoreXattrs: true}

var resolveModes = []struct {
	name string
	mode resolveMode
}{{"openat2", resolveAuto}, {"walk", resolveWalk}}

func doApply(root string, data []byte, opts Options, mode resolveMode) (Stats, error) {
	return apply(context.Background(), root, bytes.NewReader(data), opts, mode)
}

func doUnpack(dst string, data []byte, opts Options, mode resolveMode) (Stats, error) {
	return unpack(context.Background(), dst, bytes.NewReader(data), opts, mode)
}

func readFile(tb testing.TB, p string) string {
	tb.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		tb.Fatalf("read: %v", err)
	}
	return string(b)
}

func requireMissing(tb testing.TB, p string) {
	tb.Helper()
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		tb.Fatalf("%s exists (err %v), want it absent", p, err)
	}
}

// workEntries lists the work dir (to check no temp sibling is left behind).
func workEntries(tb testing.TB, s *sandbox) []string {
	tb.Helper()
	ents, err := os.ReadDir(s.work)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
