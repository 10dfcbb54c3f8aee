//go:build root

package archive

import (
	"archive/tar"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"testing"

	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: chown, mknod and trusted.* xattrs")
	}
}

// TestAttacksRoot repeats the attack table with every privileged operation
// enabled (lchown, mknod, xattrs) and with overlay whiteouts.
func TestAttacksRoot(t *testing.T) {
	requireRoot(t)
	for _, opts := range []Options{{}, {Whiteouts: WhiteoutOverlay}} {
		for _, tc := range attackCases() {
			for _, rm := range resolveModes {
				t.Run(tc.name+"/"+rm.name+"/"+whiteoutName(opts.Whiteouts), func(t *testing.T) {
					s := newSandbox(t)
					before := s.outside(t)
					if tc.setup != nil {
						tc.setup(t, s)
					}
					entries := tc.entries(s)
					for i := range entries {
						entries[i] = entries[i].withOwner(1234, 5678).withPAX("SCHILY.xattr.trusted.pwn", "1")
					}
					_, err := doApply(s.root, buildTar(t, entries...), opts, rm.mode)
					t.Logf("result: %v", err)
					if d := diffTrees(before, s.outside(t)); d != "" {
						t.Fatalf("outside the root changed (err %v):\n%s", err, d)
					}
					switch {
					case tc.wantErr == errAny:
					case tc.wantErr == nil && err != nil && opts.Whiteouts == WhiteoutApply:
						// (Overlay whiteouts create their parent dirs, which
						// fails below an escaping symlink: either is fine.)
						t.Fatalf("err = %v, want success", err)
					case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
						t.Fatalf("err = %v, want %v", err, tc.wantErr)
					}
				})
			}
		}
	}
}

func whiteoutName(m WhiteoutMode) string {
	if m == WhiteoutOverlay {
		return "overlay"
	}
	return "apply"
}

func TestOwnershipAndSetID(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	layer := buildTar(t,
		dir("sgid/").withMode(0o2775).withOwner(1000, 1001),
		dir("tmp/").withMode(0o1777),
		file("sgid/suid", "x").withMode(0o4755).withOwner(1000, 1001),
		file("sgidfile", "x").withMode(0o2711).withOwner(1002, 1003),
		symlink("link", "/nowhere").withOwner(1004, 1005),
		tarEntry{name: "null", typ: tar.TypeChar, major: 1, minor: 3, mode: 0o666, uid: 7, gid: 8},
		tarEntry{name: "loop0", typ: tar.TypeBlock, major: 7, minor: 0, mode: 0o4660},
		tarEntry{name: "fifo", typ: tar.TypeFifo, mode: 0o620, uid: 9, gid: 10},
	)
	for _, rm := range resolveModes {
		t.Run(rm.name, func(t *testing.T) {
			dst := filepath.Join(s.work, rm.name)
			if _, err := doUnpack(dst, layer, Options{}, rm.mode); err != nil {
				t.Fatal(err)
			}
			for p, want := range map[string]struct {
				mode     uint32
				uid, gid uint32
				rdev     uint64
			}{
				"sgid":      {unix.S_IFDIR | 0o2775, 1000, 1001, 0},
				"tmp":       {unix.S_IFDIR | 0o1777, 0, 0, 0},
				"sgid/suid": {unix.S_IFREG | 0o4755, 1000, 1001, 0},
				"sgidfile":  {unix.S_IFREG | 0o2711, 1002, 1003, 0},
				"link":      {unix.S_IFLNK | 0o777, 1004, 1005, 0},
				"null":      {unix.S_IFCHR | 0o666, 7, 8, unix.Mkdev(1, 3)},
				"loop0":     {unix.S_IFBLK | 0o4660, 0, 0, unix.Mkdev(7, 0)},
				"fifo":      {unix.S_IFIFO | 0o620, 9, 10, 0},
			} {
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(dst, p), &st); err != nil {
					t.Errorf("%s: %v", p, err)
					continue
				}
				if st.Mode != want.mode || st.Uid != want.uid || st.Gid != want.gid || uint64(st.Rdev) != want.rdev {
					t.Errorf("%s: mode %#o %d:%d rdev %d; want %#o %d:%d rdev %d",
						p, st.Mode, st.Uid, st.Gid, st.Rdev, want.mode, want.uid, want.gid, want.rdev)
				}
			}
		})
	}
}

func TestTrustedXattrs(t *testing.T) {
	requireRoot(t)
	s := newSandbox(t)
	layer := buildTar(t,
		file("f", "x").withPAX("SCHILY.xattr.trusted.berth", "t"),
		tarEntry{name: "fifo", typ: tar.TypeFifo, mode: 0o600}.withPAX("SCHILY.xattr.trusted.berth", "fifo"),
		dir("d/").withPAX("SCHILY.xattr.trusted.overlay.opaque", "y"),
	)
	if _, err := doUnpack(s.dst, layer, Options{}, resolveAuto); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"f": "t", "fifo": "fifo"} {
		buf := make([]byte, 64)
		n, err := unix.Lgetxattr(filepath.Join(s.dst, p), "trusted.berth", buf)
		if err != nil || string(buf[:n]) != want {
			t.Errorf("%s trusted.berth = %q, %v; want %q", p, buf[:n], err, want)
		}
	}
	// A layer cannot plant overlay attributes through PAX records.
	if _, err := unix.Lgetxattr(filepath.Join(s.dst, "d"), overlayOpaqueXattr, make([]byte, 8)); err == nil {
		t.Errorf("d has %s from a PAX record", overlayOpaqueXattr)
	}
}

func isWhiteoutDevice(t *testing.T, p string) bool {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func opaqueXattr(p string) string {
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(p, overlayOpaqueXattr, buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

func TestWhiteoutOverlay(t *testing.T) {
	requireRoot(t)
	layer := buildTar(t,
		dir("a/"),
		file("a/.wh.x", ""),
		file(".wh.top", ""),
		file("o/new1", "layer"), // before the marker: must stay visible
		file("o/.wh..wh..opq", ""),
		file("o/new2", "layer"),
		file("missing/.wh.y", ""),
		file("q/.wh..wh..opq", ""),
	)
	for _, rm := range resolveModes {
		t.Run(rm.name, func(t *testing.T) {
			s := newSandbox(t)
			upper := filepath.Join(s.work, "upper")
			if _, err := doUnpack(upper, layer, Options{Whiteouts: WhiteoutOverlay}, rm.mode); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"a/x", "top", "missing/y"} {
				if !isWhiteoutDevice(t, filepath.Join(upper, p)) {
					t.Errorf("%s is not a 0:0 char device", p)
				}
			}
			for _, p := range []string{"o", "q"} {
				if got := opaqueXattr(filepath.Join(upper, p)); got != "y" {
					t.Errorf("%s: %s = %q, want y", p, overlayOpaqueXattr, got)
				}
			}
			if got := listTree(t, filepath.Join(upper, "o")); !slices.Equal(got, []string{"new1=layer", "new2=layer"}) {
				t.Errorf("o: %q", got)
			}

			// Stack it on a lower dir with overlayfs (in a private mount
			// namespace of one locked thread) and look at the merged view.
			lower := filepath.Join(s.work, "lower")
			writeTree(t, lower, map[string]string{
				"a/x": "lower", "a/keep": "lower", "top": "lower", "o/old": "lower", "o/new1": "lower", "q/old": "lower", "other": "lower",
			})
			merged, err := overlayList(filepath.Join(s.work, "mnt"), upper+":"+lower)
			if err != nil {
				t.Skipf("overlay mount not available: %v", err)
			}
			want := []string{"a/", "a/keep", "missing/", "o/", "o/new1", "o/new2", "other", "q/"}
			if !slices.Equal(merged, want) {
				t.Fatalf("merged view %q, want %q", merged, want)
			}
		})
	}
}

// overlayList mounts a read-only overlay of lowerdirs at mnt in a new mount
// namespace of a dedicated, never-reused OS thread and lists the merged tree.
func overlayList(mnt, lowerdirs string) ([]string, error) {
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return nil, err
	}
	type result struct {
		names []string
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		names, err := func() ([]string, error) {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return nil, err
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return nil, err
			}
			if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, "lowerdir="+lowerdirs); err != nil {
				return nil, err
			}
			defer unix.Unmount(mnt, unix.MNT_DETACH)
			var names []string
			err := filepath.Walk(mnt, func(p string, fi os.FileInfo, err error) error {
				if errors.Is(err, os.ErrNotExist) {
					return nil // a whiteout in an upper-only dir is listed but not there
				}
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(mnt, p)
				if rel == "." {
					return nil
				}
				if fi.IsDir() {
					rel += "/"
				}
				names = append(names, rel)
				return nil
			})
			sort.Strings(names)
			return names, err
		}()
		ch <- result{names, err}
	}()
	r := <-ch
	return r.names, r.err
}
