package image

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	digest "github.com/opencontainers/go-digest"
)

func TestTagGetList(t *testing.T) {
	reg := newRegistry(t, nil)
	img := image(t, testPlatform, "a", baseLayer(t))
	reg.push(t, "test/a:1", img)
	s := openStore(t)
	ctx := ctxT(t)
	pulled, err := s.Pull(ctx, reg.ref("test/a:1"), anon())
	if err != nil {
		t.Fatal(err)
	}
	id := pulled.ID
	if err := s.Tag(ctx, reg.ref("test/a:1"), "busybox"); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, id.Encoded()[:8], "user/app:2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, "busybox", "x@"+digest.FromString("x").String()); !errors.Is(err, ErrInvalid) {
		t.Errorf("tag with a digest: %v", err)
	}
	if err := s.Tag(ctx, "nope", "y"); !errors.Is(err, ErrNotFound) {
		t.Errorf("tag of unknown image: %v", err)
	}
	md := manifestDigest(t, img)
	for _, n := range []string{
		"busybox", "busybox:latest", "docker.io/library/busybox:latest", "index.docker.io/library/busybox",
		"user/app:2", "docker.io/user/app:2", reg.ref("test/a:1"), reg.ref("test/a@" + md),
		id.String(), id.Encoded(), id.Encoded()[:4], "sha256:" + id.Encoded()[:10],
	} {
		got, err := s.Get(ctx, n)
		if err != nil {
			t.Errorf("Get(%q): %v", n, err)
			continue
		}
		if got.ID != id {
			t.Errorf("Get(%q) = %s", n, got.ID)
		}
	}
	got, _ := s.Get(ctx, "busybox")
	want := []string{reg.ref("test/a:1"), "busybox:latest", "user/app:2"}
	slices.Sort(want)
	if !slices.Equal(got.RepoTags, want) {
		t.Errorf("RepoTags = %v, want %v", got.RepoTags, want)
	}
	for _, n := range []string{"busybox:2", id.Encoded()[:3], "sha256:" + strings.Repeat("0", 64), "0000", reg.ref("test/a@" + digest.FromString("z").String())} {
		if _, err := s.Get(ctx, n); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", n, err)
		}
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Errorf("List = %v, %v", list, err)
	}
	raw, err := s.RawConfig(ctx, id)
	if err != nil || digest.FromBytes(raw) != id {
		t.Errorf("RawConfig = %d bytes, %v", len(raw), err)
	}
	if _, err := s.RawConfig(ctx, digest.FromString("nope")); !errors.Is(err, ErrNotFound) {
		t.Errorf("RawConfig of unknown image: %v", err)
	}
}

// prefixTwins returns two images whose IDs share their first 4 hex digits.
func prefixTwins(t *testing.T) (v1.Image, v1.Image) {
	seen := make(map[string]v1.Image)
	for i := range 100000 {
		img := image(t, testPlatform, strconv.Itoa(i))
		id := imageID(t, img)
		p := strings.TrimPrefix(id, "sha256:")[:4]
		if o, ok := seen[p]; ok && imageID(t, o) != id {
			return o, img
		}
		seen[p] = img
	}
	t.Fatal("no two IDs with a common prefix")
	return nil, nil
}

func TestGetAmbiguousPrefix(t *testing.T) {
	a, b := prefixTwins(t)
	var buf bytes.Buffer
	ta, _ := name.NewTag("twin:a")
	tb, _ := name.NewTag("twin:b")
	if err := tarball.MultiRefWrite(map[name.Reference]v1.Image{ta: a, tb: b}, &buf); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	ctx := ctxT(t)
	imgs, err := s.Load(ctx, &buf, nil)
	if err != nil || len(imgs) != 2 {
		t.Fatalf("Load = %v, %v", imgs, err)
	}
	idA := strings.TrimPrefix(imageID(t, a), "sha256:")
	if _, err := s.Get(ctx, idA[:4]); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("Get(%s) = %v, want ErrAmbiguous", idA[:4], err)
	}
	if _, err := s.Remove(ctx, idA[:4], true); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("Remove(%s) = %v, want ErrAmbiguous", idA[:4], err)
	}
	got, err := s.Get(ctx, "twin:a")
	if err != nil || got.ID.Encoded() != idA {
		t.Errorf("Get(twin:a) = %v, %v", got, err)
	}
}

func TestRemove(t *testing.T) {
	reg := newRegistry(t, nil)
	base := baseLayer(t)
	a := image(t, testPlatform, "a", base, layer(t, file("a", "a")))
	b := image(t, testPlatform, "b", base, layer(t, file("b", "b")))
	reg.push(t, "a:1", a)
	reg.push(t, "b:1", b)
	inUse := map[digest.Digest]bool{}
	ctx := ctxT(t)
	var s *Store
	s = openStore(t, func(o *Options) {
		o.InUse = func(id digest.Digest) bool {
			// The engine may call back into the store: no deadlock.
			if _, err := s.Get(ctx, id.String()); err != nil {
				t.Errorf("InUse(%s): Get: %v", id, err)
			}
			return inUse[id]
		}
	})
	ia, err := s.Pull(ctx, reg.ref("a:1"), anon())
	if err != nil {
		t.Fatal(err)
	}
	ib, err := s.Pull(ctx, reg.ref("b:1"), anon())
	if err != nil {
		t.Fatal(err)
	}
	dirsB, _ := s.LayerDirs(ctx, ib.ID)
	if err := s.Tag(ctx, reg.ref("a:1"), "other:2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, reg.ref("a:1"), reg.ref("a:latest")); err != nil {
		t.Fatal(err)
	}
	// By ID, tagged in two repositories: refused unless forced.
	if _, err := s.Remove(ctx, ia.ID.String(), false); !errors.Is(err, ErrConflict) {
		t.Fatalf("Remove by ID = %v, want ErrConflict", err)
	}
	// Untagging leaves the image.
	res, err := s.Remove(ctx, "other:2", false)
	if err != nil || !slices.Equal(res.Untagged, []string{"other:2"}) || len(res.Deleted) != 0 {
		t.Fatalf("Remove(other:2) = %+v, %v", res, err)
	}
	if _, err := s.Remove(ctx, "other:2", false); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove(other:2) = %v", err)
	}
	if _, err := s.Remove(ctx, reg.ref("a:latest"), false); err != nil {
		t.Fatal(err)
	}
	// In use: refused by ID unless forced.
	inUse[ia.ID] = true
	if _, err := s.Remove(ctx, ia.ID.Encoded()[:12], false); !errors.Is(err, ErrInUse) {
		t.Errorf("Remove of image in use = %v, want ErrInUse", err)
	}
	inUse[ia.ID] = false
	// The last tag in one repository (plus its digest reference): by ID, no force needed.
	res, err = s.Remove(ctx, ia.ID.Encoded()[:12], false)
	if err != nil {
		t.Fatal(err)
	}
	wantUntagged := []string{reg.ref("a:1"), reg.ref("a@" + manifestDigest(t, a))}
	slices.Sort(wantUntagged)
	slices.Sort(res.Untagged)
	if !slices.Equal(res.Untagged, wantUntagged) {
		t.Errorf("Untagged = %v, want %v", res.Untagged, wantUntagged)
	}
	// The image and its own top layer are deleted; the shared base stays.
	if len(res.Deleted) != 2 || res.Deleted[0] != ia.ID {
		t.Errorf("Deleted = %v", res.Deleted)
	}
	if _, err := s.Get(ctx, ia.ID.String()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Remove = %v", err)
	}
	for _, d := range dirsB {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("layer of b: %v", err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(s.root, dirLayers)); len(ents) != 2 {
		t.Errorf("%d layer dirs left, want 2", len(ents))
	}
	for _, d := range []v1.Image{b} {
		ls, _ := d.Layers()
		for _, l := range ls {
			h, _ := l.Digest()
			if !s.hasBlob(digest.Digest(h.String())) {
				t.Errorf("blob %s of b was removed", h)
			}
		}
	}
	// The last name of an image in use: refused unless forced, and then
	// the image stays, dangling.
	inUse[ib.ID] = true
	if _, err := s.Remove(ctx, reg.ref("b:1"), false); !errors.Is(err, ErrInUse) {
		t.Errorf("Remove(b:1) in use = %v, want ErrInUse", err)
	}
	res, err = s.Remove(ctx, reg.ref("b:1"), true)
	if err != nil || len(res.Deleted) != 0 || len(res.Untagged) != 2 {
		t.Errorf("forced Remove(b:1) in use = %+v, %v", res, err)
	}
	got, err := s.Get(ctx, ib.ID.String())
	if err != nil || len(got.RepoTags) != 0 || len(got.RepoDigests) != 0 {
		t.Errorf("dangling image = %+v, %v", got, err)
	}
	res, err = s.Remove(ctx, ib.ID.String(), true)
	if err != nil || len(res.Deleted) != 3 {
		t.Errorf("forced Remove = %+v, %v", res, err)
	}
	for _, sub := range []string{dirLayers, filepath.Join(dirBlobs, "sha256"), dirImages, dirTmp} {
		if ents, _ := os.ReadDir(filepath.Join(s.root, sub)); len(ents) != 0 {
			t.Errorf("%s not empty after removing every image: %d entries", sub, len(ents))
		}
	}
}

func TestRecoveryAndLock(t *testing.T) {
	reg := newRegistry(t, nil)
	a := image(t, testPlatform, "a", baseLayer(t))
	b := image(t, testPlatform, "b", layer(t, file("b", "b")))
	reg.push(t, "a:1", a)
	reg.push(t, "b:1", b)
	root := t.TempDir()
	ctx := ctxT(t)
	s, err := Open(Options{Root: root, Unprivileged: true, Platform: testPlatform, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{Root: root}); !errors.Is(err, ErrInUse) {
		t.Errorf("second Open = %v, want ErrInUse", err)
	}
	ia, err := s.Pull(ctx, reg.ref("a:1"), anon())
	if err != nil {
		t.Fatal(err)
	}
	ib, err := s.Pull(ctx, reg.ref("b:1"), anon())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "sha256:"+ia.ID.Encoded()); err == nil {
		t.Error("Get after Close succeeded")
	}
	// Simulate a crash: temporary files, a half-unpacked layer, a lost blob
	// of image b, an orphan blob.
	os.WriteFile(filepath.Join(root, dirTmp, "blob-123"), []byte("partial"), 0o600)
	half := filepath.Join(root, dirLayers, digest.FromString("half").Encoded())
	os.MkdirAll(filepath.Join(half, "fs", "etc"), 0o755)
	os.WriteFile(filepath.Join(half, "fs", "etc", "x"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(root, dirLayers, ".tmp-unpack"), 0o755)
	lsB, _ := b.Layers()
	hb, _ := lsB[0].Digest()
	if err := os.Remove(filepath.Join(root, dirBlobs, "sha256", hb.Hex)); err != nil {
		t.Fatal(err)
	}
	orphan := digest.FromString("orphan")
	os.WriteFile(filepath.Join(root, dirBlobs, "sha256", orphan.Encoded()), []byte("orphan"), 0o600)

	s2 := openStore(t, func(o *Options) { o.Root = root })
	if ents, _ := os.ReadDir(filepath.Join(root, dirTmp)); len(ents) != 0 {
		t.Errorf("tmp not emptied: %d entries", len(ents))
	}
	for _, p := range []string{half, filepath.Join(root, dirLayers, ".tmp-unpack"), s2.blobPath(orphan)} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived recovery: %v", p, err)
		}
	}
	if _, err := s2.Get(ctx, ib.ID.String()); !errors.Is(err, ErrNotFound) {
		t.Errorf("image with a missing blob: %v", err)
	}
	if _, err := s2.Get(ctx, reg.ref("b:1")); !errors.Is(err, ErrNotFound) {
		t.Errorf("tag of the dropped image: %v", err)
	}
	got, err := s2.Get(ctx, reg.ref("a:1"))
	if err != nil || got.ID != ia.ID {
		t.Fatalf("Get(a:1) = %v, %v", got, err)
	}
	dirs, err := s2.LayerDirs(ctx, ia.ID)
	if err != nil || readFile(t, filepath.Join(dirs[0], "etc/os-release")) != "ID=berth\n" {
		t.Errorf("LayerDirs = %v, %v", dirs, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, dirLayers)); len(ents) != 1 {
		t.Errorf("%d layer dirs, want 1", len(ents))
	}
	// Pulling b again repairs it.
	if _, err := s2.Pull(ctx, reg.ref("b:1"), anon()); err != nil {
		t.Fatal(err)
	}
}
