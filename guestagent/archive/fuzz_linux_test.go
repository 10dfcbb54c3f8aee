package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzUnpack feeds arbitrary bytes (seeded with every attack tar) to Unpack
// and Apply and asserts that nothing outside the extraction root appears or
// changes and that a failed Unpack leaves nothing behind.
func FuzzUnpack(f *testing.F) {
	s := newSandbox(f)
	for _, tc := range attackCases() {
		f.Add(buildTar(f, tc.entries(s)...))
	}
	up := strings.Repeat("../", 24) + s.victim[1:]
	f.Add(buildTar(f,
		dir("o/"), file("o/.wh..wh..opq", ""), file("o/x", "x"), file(".wh.keep", ""),
		symlink("up", up), file("up/.wh.passwd", ""), file("up/.wh..wh..opq", ""),
		hardlink("h", "up/passwd"), file("h", "pwned"),
	))
	f.Add(buildTar(f, tarEntry{name: "p", typ: tar.TypeFifo}, file(".", ""), dir("/")))
	f.Add([]byte{})
	before := s.outside(f)
	lower := map[string]string{"keep": "lower", "o/old": "lower", "lib@": s.victim, "d/": ""}
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		dir := t.TempDir()
		t.Cleanup(func() { makeWritable(dir) })
		opts := Options{IgnoreOwnership: true, SkipDevices: true, IgnoreXattrs: true, MaxBytes: 1 << 20, MaxEntries: 512}

		dst := filepath.Join(dir, "dst")
		_, uerr := unpack(ctx, dst, bytes.NewReader(data), opts, resolveAuto)

		root := filepath.Join(dir, "root")
		writeTree(t, root, lower)
		_, _ = apply(ctx, root, bytes.NewReader(data), opts, resolveWalk)

		if d := diffTrees(before, s.outside(t)); d != "" {
			t.Fatalf("outside the root changed:\n%s", d)
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		want := []string{"root"}
		if uerr == nil {
			want = []string{"dst", "root"}
		}
		if !slices.Equal(names, want) {
			t.Fatalf("next to the roots: %v, want %v (unpack err %v)", names, want, uerr)
		}
	})
}
