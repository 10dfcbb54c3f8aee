//go:build root

package image

import (
	"archive/tar"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPullOverlayLayers checks that a normal (privileged) store unpacks layers
// as overlay lowerdirs: whiteouts as 0:0 character devices, opaque
// directories marked, ownership from the tar headers.
func TestPullOverlayLayers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mknod, chown and trusted xattrs")
	}
	reg := newRegistry(t, nil)
	base := baseLayer(t)
	top := layer(t,
		dir("etc/"), file("etc/.wh.gone", ""),
		tarEntry{name: "opq/", typ: tar.TypeDir, mode: 0o750, uid: 1234, gid: 5678},
		file("opq/.wh..wh..opq", ""),
		tarEntry{name: "opq/new", typ: tar.TypeReg, body: "n", uid: 1234, gid: 5678, mode: 0o640},
	)
	img := image(t, testPlatform, "root", base, top)
	reg.push(t, "root:1", img)
	s := openStore(t, func(o *Options) { o.Unprivileged = false })
	ctx := ctxT(t)
	got, err := s.Pull(ctx, reg.ref("root:1"), anon())
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := s.LayerDirs(ctx, got.ID)
	if err != nil || len(dirs) != 2 {
		t.Fatalf("LayerDirs = %v, %v", dirs, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dirs[0], "etc/gone"), &st); err != nil {
		t.Fatalf("whiteout: %v", err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout mode %o rdev %d, want a 0:0 char device", st.Mode, st.Rdev)
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(dirs[0], "opq"), "trusted.overlay.opaque", buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Errorf("opaque xattr = %q, %v", buf[:n], err)
	}
	for _, p := range []string{"opq", "opq/new"} {
		if err := unix.Lstat(filepath.Join(dirs[0], p), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 1234 || st.Gid != 5678 {
			t.Errorf("%s owned by %d:%d, want 1234:5678", p, st.Uid, st.Gid)
		}
	}
	if _, err := os.Lstat(filepath.Join(dirs[0], "opq/.wh..wh..opq")); !os.IsNotExist(err) {
		t.Errorf("opaque marker materialized: %v", err)
	}
	if readFile(t, filepath.Join(dirs[1], "etc/gone")) != "x" {
		t.Error("base layer lost etc/gone")
	}
	// Removing the image removes the devices too.
	if _, err := s.Remove(ctx, got.ID.String(), false); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.root, dirLayers)); len(ents) != 0 {
		t.Errorf("%d layer dirs left", len(ents))
	}
}
