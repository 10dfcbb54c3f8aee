package archive

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"archive/tar"
)

// errAny marks a case where refusing and succeeding are both acceptable; only
// the absence of effects outside the root is asserted.
var errAny = errors.New("any outcome")

type attackCase struct {
	name      string
	applyOnly bool                                        // setup plants state in an existing root
	setup     func(t *testing.T, s *sandbox)              // prepares s.root (Apply only)
	entries   func(s *sandbox) []tarEntry                 // the tar
	wantErr   error                                       // nil: must succeed; errAny: either
	check     func(t *testing.T, s *sandbox, root string) // inside assertions after success
}

func attackCases() []attackCase {
	pwn := func(name string) tarEntry { return file(name, "pwned") }
	isRegular := func(rel, want string) func(t *testing.T, s *sandbox, root string) {
		return func(t *testing.T, s *sandbox, root string) {
			if got := readFile(t, filepath.Join(root, rel)); got != want {
				t.Fatalf("%s = %q, want %q", rel, got, want)
			}
			if fi, _ := os.Lstat(filepath.Join(root, rel)); !fi.Mode().IsRegular() {
				t.Fatalf("%s is %v, want a regular file", rel, fi.Mode())
			}
		}
	}
	return []attackCase{
		{name: "dotdot name", entries: func(s *sandbox) []tarEntry { return []tarEntry{pwn("../../victim/passwd")} }, wantErr: ErrUnsafePath},
		{name: "dotdot inside name", entries: func(s *sandbox) []tarEntry { return []tarEntry{pwn("a/../../../victim/passwd")} }, wantErr: ErrUnsafePath},
		{name: "rooted dotdot name", entries: func(s *sandbox) []tarEntry { return []tarEntry{pwn("/../../victim/passwd")} }, wantErr: ErrUnsafePath},
		{
			name:    "absolute name",
			entries: func(s *sandbox) []tarEntry { return []tarEntry{pwn(s.victim + "/passwd")} },
			check:   func(t *testing.T, s *sandbox, root string) { isRegular(s.victim[1:]+"/passwd", "pwned")(t, s, root) },
		},
		{
			name:    "absolute symlink then write through it",
			entries: func(s *sandbox) []tarEntry { return []tarEntry{symlink("a", s.victim), pwn("a/passwd")} },
			wantErr: errAny,
		},
		{
			name:    "relative escaping symlink then write through it",
			entries: func(s *sandbox) []tarEntry { return []tarEntry{symlink("a", "../../victim"), pwn("a/passwd")} },
			wantErr: errAny,
		},
		{
			name: "long dotdot symlink then write through it",
			entries: func(s *sandbox) []tarEntry {
				return []tarEntry{symlink("a", strings.Repeat("../", 30)+s.victim[1:]), pwn("a/passwd"), pwn("a/etc/shadow")}
			},
			wantErr: errAny,
		},
		{
			name:    "symlink to outside file then overwrite",
			entries: func(s *sandbox) []tarEntry { return []tarEntry{symlink("p", s.victimFile), pwn("p")} },
			check:   isRegular("p", "pwned"),
		},
		{
			name:    "symlink to outside file, metadata only",
			entries: func(s *sandbox) []tarEntry { return []tarEntry{symlink("t", s.victimFile).withMode(0o777)} },
			check: func(t *testing.T, s *sandbox, root string) {
				if got, _ := os.Readlink(filepath.Join(root, "t")); got != s.victimFile {
					t.Fatalf("t -> %q, want %q (targets are written verbatim)", got, s.victimFile)
				}
			},
		},
		{
			name: "dotdot symlink chain",
			entries: func(s *sandbox) []tarEntry {
				return []tarEntry{symlink("up", ".."), symlink("up2", "up/up/up/../.."), pwn("up2/up/victim/passwd")}
			},
			check: isRegular("victim/passwd", "pwned"),
		},
		{
			name:    "symlink loop",
			entries: func(s *sandbox) []tarEntry { return []tarEntry{symlink("l1", "l2"), symlink("l2", "l1"), pwn("l1/x")} },
			wantErr: errAny,
		},
		{
			name:    "file below symlink to outside file",
			entries: func(s *sandbox) []tarEntry { return []tarEntry{symlink("a", s.victimFile), pwn("a/x")} },
			wantErr: errAny,
		},
		{name: "hardlink dotdot target", entries: func(s *sandbox) []tarEntry { return []tarEntry{hardlink("h", "../../victim/passwd")} }, wantErr: ErrUnsafePath},
		{
			name:    "hardlink absolute target",
			entries: func(s *sandbox) []tarEntry { return []tarEntry{hardlink("h", s.victim+"/passwd"), pwn("h")} },
			wantErr: errAny,
		},
		{
			name: "hardlink through symlink",
			entries: func(s *sandbox) []tarEntry {
				return []tarEntry{symlink("a", s.victim), hardlink("h", "a/passwd"), pwn("h")}
			},
			wantErr: errAny,
		},
		{
			name: "hardlink to escaping symlink then write",
			entries: func(s *sandbox) []tarEntry {
				return []tarEntry{symlink("s", s.victimFile), hardlink("h", "s"), pwn("h")}
			},
			check: func(t *testing.T, s *sandbox, root string) {
				isRegular("h", "pwned")(t, s, root)
				if got, _ := os.Readlink(filepath.Join(root, "s")); got != s.victimFile {
					t.Fatalf("s -> %q, want %q", got, s.victimFile)
				}
			},
		},
		{
			name: "write to hardlinked name replaces, never writes through",
			entries: func(s *sandbox) []tarEntry {
				return []tarEntry{file("f", "orig"), hardlink("h", "f"), file("h", "new")}
			},
			check: func(t *testing.T, s *sandbox, root string) {
				isRegular("f", "orig")(t, s, root)
				isRegular("h", "new")(t, s, root)
			},
		},
		{
			name:      "existing symlinked parent dir",
			applyOnly: true,
			setup: func(t *testing.T, s *sandbox) {
				if err := os.Symlink(s.victim, filepath.Join(s.root, "lib")); err != nil {
					t.Fatal(err)
				}
			},
			entries: func(s *sandbox) []tarEntry { return []tarEntry{pwn("lib/passwd"), pwn("lib/etc/shadow")} },
			wantErr: errAny,
		},
		{
			name:      "existing symlink replaced by dir entry",
			applyOnly: true,
			setup: func(t *testing.T, s *sandbox) {
				if err := os.Symlink(s.victim, filepath.Join(s.root, "v")); err != nil {
					t.Fatal(err)
				}
			},
			entries: func(s *sandbox) []tarEntry { return []tarEntry{dir("v/").withMode(0o700).withTime(testTime)} },
			check: func(t *testing.T, s *sandbox, root string) {
				if fi, err := os.Lstat(filepath.Join(root, "v")); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
					t.Fatalf("v: %v %v, want a 0700 dir", fi, err)
				}
			},
		},
		{
			name:    "dir replaced by symlink then write below",
			entries: func(s *sandbox) []tarEntry { return []tarEntry{dir("d/"), symlink("d", s.victim), pwn("d/passwd")} },
			wantErr: errAny,
		},
		{
			name: "dir replaced by symlink then dir again",
			entries: func(s *sandbox) []tarEntry {
				return []tarEntry{dir("d/"), symlink("d", s.victim+"/etc"), dir("d/").withMode(0o777)}
			},
			check: func(t *testing.T, s *sandbox, root string) {
				if fi, err := os.Lstat(filepath.Join(root, "d")); err != nil || !fi.IsDir() {
					t.Fatalf("d: %v %v, want a dir", fi, err)
				}
			},
		},
		{
			name: "fifo over symlink to outside file",
			entries: func(s *sandbox) []tarEntry {
				return []tarEntry{symlink("f", s.victimFile), {name: "f", typ: tar.TypeFifo, mode: 0o666}}
			},
			check: func(t *testing.T, s *sandbox, root string) {
				if fi, err := os.Lstat(filepath.Join(root, "f")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
					t.Fatalf("f: %v %v, want a fifo", fi, err)
				}
			},
		},
		{name: "whiteout dotdot", entries: func(s *sandbox) []tarEntry { return []tarEntry{file("../../victim/.wh.passwd", "")} }, wantErr: ErrUnsafePath},
		{name: "whiteout of dotdot", entries: func(s *sandbox) []tarEntry { return []tarEntry{file("x/.wh..", "")} }, wantErr: ErrUnsafePath},
		{
			name: "whiteout through symlink",
			entries: func(s *sandbox) []tarEntry {
				return []tarEntry{symlink("a", s.victim), file("a/.wh.passwd", ""), file("a/.wh.etc", "")}
			},
		},
		{
			name:    "opaque through symlink",
			entries: func(s *sandbox) []tarEntry { return []tarEntry{symlink("a", s.victim), file("a/.wh..wh..opq", "")} },
		},
		{
			name: "absolute whiteout",
			entries: func(s *sandbox) []tarEntry {
				return []tarEntry{file(s.victim+"/.wh.passwd", ""), file(s.victim+"/.wh..wh..opq", "")}
			},
		},
		{name: "file named as the root", entries: func(s *sandbox) []tarEntry { return []tarEntry{pwn(".")} }, wantErr: ErrUnsafePath},
		{name: "hardlink to the root", entries: func(s *sandbox) []tarEntry { return []tarEntry{hardlink("h", "/")} }, wantErr: ErrUnsafePath},
	}
}

// TestAttacks runs each hostile tar through Apply and Unpack with both path
// resolvers and asserts nothing outside the root changed.
func TestAttacks(t *testing.T) {
	opts := Options{IgnoreOwnership: true, IgnoreXattrs: true}
	for _, tc := range attackCases() {
		for _, rm := range resolveModes {
			for _, op := range []string{"apply", "unpack"} {
				if op == "unpack" && tc.applyOnly {
					continue
				}
				t.Run(tc.name+"/"+rm.name+"/"+op, func(t *testing.T) {
					s := newSandbox(t)
					before := s.outside(t)
					if tc.setup != nil {
						tc.setup(t, s)
					}
					data := buildTar(t, tc.entries(s)...)
					var err error
					root := s.root
					if op == "apply" {
						_, err = doApply(s.root, data, opts, rm.mode)
					} else {
						root = s.dst
						_, err = doUnpack(s.dst, data, opts, rm.mode)
					}
					t.Logf("result: %v", err)
					if d := diffTrees(before, s.outside(t)); d != "" {
						t.Fatalf("outside the root changed (err %v):\n%s", err, d)
					}
					switch {
					case tc.wantErr == errAny:
					case tc.wantErr == nil && err != nil:
						t.Fatalf("err = %v, want success", err)
					case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
						t.Fatalf("err = %v, want %v", err, tc.wantErr)
					}
					if op == "unpack" {
						want := []string{"root"}
						if err == nil {
							want = []string{"dst", "root"}
						}
						if got := workEntries(t, s); !slices.Equal(got, want) {
							t.Fatalf("work dir has %v, want %v (err %v)", got, want, err)
						}
					}
					if err == nil && tc.check != nil {
						tc.check(t, s, root)
					}
				})
			}
		}
	}
}
