package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// tarDir tars a directory tree (regular files and dirs) for Load.
func tarDir(t *testing.T, root string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// untar extracts a trusted test tarball of plain files.
func untar(t *testing.T, b []byte, dst string) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dst, filepath.FromSlash(hdr.Name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			os.MkdirAll(filepath.Dir(p), 0o755)
			data, _ := io.ReadAll(tr)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func gz(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSaveLoadRoundTrip(t *testing.T) {
	reg := newRegistry(t, nil)
	base := baseLayer(t)
	a := image(t, testPlatform, "a", base, topLayer(t))
	b := image(t, testPlatform, "b", base)
	reg.push(t, "a:1", a)
	reg.push(t, "b:1", b)
	s := openStore(t)
	ctx := ctxT(t)
	for _, r := range []string{"a:1", "b:1"} {
		if _, err := s.Pull(ctx, reg.ref(r), anon()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Tag(ctx, reg.ref("a:1"), "busybox:musl"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Save(ctx, &buf, []string{reg.ref("a:1"), "busybox:musl", reg.ref("b:1")}); err != nil {
		t.Fatal(err)
	}
	saved := buf.Bytes()

	// The archive is a valid `docker save` tarball...
	opener := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(saved)), nil }
	tag, _ := name.NewTag("busybox:musl")
	fromTar, err := tarball.Image(opener, &tag)
	if err != nil {
		t.Fatal(err)
	}
	if imageID(t, fromTar) != imageID(t, a) {
		t.Errorf("docker side: image %s, want %s", imageID(t, fromTar), imageID(t, a))
	}
	if err := validate.Image(fromTar); err != nil {
		t.Errorf("docker side: %v", err)
	}
	// ... and a valid OCI layout.
	dir := t.TempDir()
	untar(t, saved, dir)
	ii, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range im.Manifests {
		names = append(names, d.Annotations[annotationImageName]+"="+d.Annotations[ocispec.AnnotationRefName])
		img, err := ii.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(img); err != nil {
			t.Errorf("OCI side %s: %v", d.Digest, err)
		}
	}
	slices.Sort(names)
	want := []string{"docker.io/library/busybox:musl=musl", reg.ref("a:1") + "=1", reg.ref("b:1") + "=1"}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("index.json names = %v, want %v", names, want)
	}

	// Round trip into a fresh store, gzip-compressed on the way.
	s2 := openStore(t)
	rec := &recorder{}
	imgs, err := s2.Load(ctx, bytes.NewReader(gz(t, saved)), rec.fn)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 {
		t.Fatalf("Load returned %d images", len(imgs))
	}
	if !rec.has("Loading layer") {
		t.Errorf("progress = %q", rec.statuses(""))
	}
	for _, src := range []string{reg.ref("a:1"), reg.ref("b:1")} {
		orig, _ := s.Get(ctx, src)
		got, err := s2.Get(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != orig.ID || !slices.Equal(got.RepoTags, orig.RepoTags) || got.Size != orig.Size || !slices.Equal(got.Layers, orig.Layers) {
			t.Errorf("loaded %s = %+v, want %+v", src, got, orig)
		}
	}
	ia, _ := s2.Get(ctx, "busybox:musl")
	dirs, _ := s2.LayerDirs(ctx, ia.ID)
	if len(dirs) != 2 || readFile(t, filepath.Join(dirs[0], "app/data")) != "hello" {
		t.Errorf("LayerDirs = %v", dirs)
	}
	if ents, _ := os.ReadDir(filepath.Join(s2.root, dirLayers)); len(ents) != 2 {
		t.Errorf("%d layer dirs, want 2", len(ents))
	}
	// Saving by ID writes the image untagged.
	buf.Reset()
	if err := s2.Save(ctx, &buf, []string{ia.ID.String()}); err != nil {
		t.Fatal(err)
	}
	s3 := openStore(t)
	imgs, err = s3.Load(ctx, &buf, nil)
	if err != nil || len(imgs) != 1 || imgs[0].ID != ia.ID || len(imgs[0].RepoTags) != 0 {
		t.Errorf("Load of untagged save = %+v, %v", imgs, err)
	}
	if err := s2.Save(ctx, io.Discard, []string{"nope:1"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Save of unknown image = %v", err)
	}
}

func TestLoadDockerTarball(t *testing.T) {
	base := baseLayer(t)
	a := image(t, testPlatform, "a", base, topLayer(t))
	b := image(t, testPlatform, "b", base)
	var buf bytes.Buffer
	ta, _ := name.NewTag("example.com/team/a:1")
	tb, _ := name.NewTag("b")
	if err := tarball.MultiRefWrite(map[name.Reference]v1.Image{ta: a, tb: b}, &buf); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	ctx := ctxT(t)
	// The outer tarball zstd-compressed.
	var zbuf bytes.Buffer
	zw, err := zstd.NewWriter(&zbuf)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(buf.Bytes())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	imgs, err := s.Load(ctx, &zbuf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 {
		t.Fatalf("Load = %d images", len(imgs))
	}
	for ref, img := range map[string]v1.Image{"example.com/team/a:1": a, "b:latest": b} {
		got, err := s.Get(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID.String() != imageID(t, img) || !slices.Equal(got.RepoTags, []string{ref}) {
			t.Errorf("%s = %s %v", ref, got.ID, got.RepoTags)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(s.root, dirLayers)); len(ents) != 2 {
		t.Errorf("%d layer dirs, want 2 (b is a's base)", len(ents))
	}
	// Loading twice is harmless.
	buf.Reset()
	tarball.MultiRefWrite(map[name.Reference]v1.Image{ta: a}, &buf)
	if _, err := s.Load(ctx, &buf, nil); err != nil {
		t.Fatal(err)
	}
}

func TestLoadOCIArchive(t *testing.T) {
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	a := image(t, testPlatform, "a", baseLayer(t))
	b := image(t, testPlatform, "b", layer(t, file("b", "b")))
	if err := p.AppendImage(a, layout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: "example.com/x:2"})); err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(b, layout.WithAnnotations(map[string]string{ocispec.AnnotationRefName: "latest"})); err != nil {
		t.Fatal(err)
	}
	// A multi-platform index named by containerd's annotation.
	amd := image(t, ocispec.Platform{OS: "linux", Architecture: "amd64"}, "amd", layer(t, file("amd", "1")))
	arm := image(t, ocispec.Platform{OS: "linux", Architecture: "arm64"}, "arm", layer(t, file("arm", "2")))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{annotationImageName: "docker.io/library/multi:3"})); err != nil {
		t.Fatal(err)
	}
	archive := tarDir(t, dir)
	s := openStore(t)
	ctx := ctxT(t)
	imgs, err := s.Load(ctx, bytes.NewReader(archive), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 3 {
		t.Fatalf("Load = %d images", len(imgs))
	}
	for ref, img := range map[string]v1.Image{"example.com/x:2": a, "multi:3": amd} {
		got, err := s.Get(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID.String() != imageID(t, img) {
			t.Errorf("%s = %s, want %s", ref, got.ID, imageID(t, img))
		}
	}
	got, err := s.Get(ctx, imageID(t, b))
	if err != nil || len(got.RepoTags) != 0 {
		t.Errorf("image with a bare tag annotation = %+v, %v", got, err)
	}
	// The stored manifest is the archive's: Save keeps its digest.
	var buf bytes.Buffer
	if err := s.Save(ctx, &buf, []string{"example.com/x:2"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), []byte(manifestDigest(t, a))) {
		t.Error("saved archive lacks the original manifest digest")
	}
}

func TestLoadBad(t *testing.T) {
	s := openStore(t)
	ctx := ctxT(t)
	img := image(t, testPlatform, "a", layer(t, file("f", strings.Repeat("data", 100))))
	var buf bytes.Buffer
	tag, _ := name.NewTag("a:1")
	if err := tarball.Write(tag, img, &buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	// Corrupt a layer: its diffID no longer matches.
	ls, _ := img.Layers()
	lh, _ := ls[0].Digest()
	var bad bytes.Buffer
	tw := tar.NewWriter(&bad)
	tr := tar.NewReader(bytes.NewReader(good))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		data, _ := io.ReadAll(tr)
		if strings.Contains(hdr.Name, lh.Hex) {
			data = gz(t, tarBytes(t, file("f", "other")))
			hdr.Size = int64(len(data))
		}
		tw.WriteHeader(hdr)
		tw.Write(data)
	}
	tw.Close()
	before := snapshot(t, s)
	for what, in := range map[string][]byte{
		"corrupt layer": bad.Bytes(),
		"not a tar":     []byte("hello world, this is not an archive at all"),
		"empty tar":     tarBytes(t),
		"escaping":      tarBytes(t, file("../../manifest.json", "[]"), file("/index.json", "{")),
	} {
		_, err := s.Load(ctx, bytes.NewReader(in), nil)
		if err == nil {
			t.Errorf("%s: loaded", what)
			continue
		}
		if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrInvalid or ErrCorrupt", what, err)
		}
		t.Logf("%s: %v", what, err)
		if after := snapshot(t, s); !slices.Equal(before, after) {
			t.Errorf("%s: store changed:\n%v\n→\n%v", what, before, after)
		}
	}
	if _, err := s.Load(ctx, bytes.NewReader(good), nil); err != nil {
		t.Fatal(err)
	}
}

// TestLoadLegacyLinks loads a hand-made `docker save` archive in the old
// layout: uncompressed <id>/layer.tar files, one shared through a symlink,
// and a link pointing out of the archive.
func TestLoadLegacyLinks(t *testing.T) {
	base := tarBytes(t, file("etc/os-release", "ID=legacy\n"))
	top := tarBytes(t, file("app", "x"))
	cfg := func(env string, layers ...[]byte) []byte {
		var ids []string
		for _, l := range layers {
			ids = append(ids, `"`+digestOf(l)+`"`)
		}
		return []byte(`{"architecture":"amd64","os":"linux","config":{"Env":["E=` + env + `"]},"rootfs":{"type":"layers","diff_ids":[` + strings.Join(ids, ",") + `]}}`)
	}
	cfgA, cfgB := cfg("a", base), cfg("b", base, top)
	manifest := `[{"Config":"a.json","RepoTags":["legacy:a"],"Layers":["l1/layer.tar"]},` +
		`{"Config":"b.json","RepoTags":["legacy:b","other/legacy:b"],"Layers":["l2/layer.tar","l3/layer.tar"]}]`
	entries := []tarEntry{
		file("manifest.json", manifest), file("a.json", string(cfgA)), file("b.json", string(cfgB)),
		dir("l1/"), file("l1/layer.tar", string(base)),
		dir("l2/"), symlink("l2/layer.tar", "../l1/layer.tar"),
		dir("l3/"), file("l3/layer.tar", string(top)),
		file("repositories", `{}`),
	}
	s := openStore(t)
	ctx := ctxT(t)
	imgs, err := s.Load(ctx, bytes.NewReader(tarBytes(t, entries...)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 {
		t.Fatalf("Load = %d images", len(imgs))
	}
	b, err := s.Get(ctx, "other/legacy:b")
	if err != nil || b.ID.String() != digestOf(cfgB) || !slices.Equal(b.RepoTags, []string{"legacy:b", "other/legacy:b"}) {
		t.Fatalf("Get = %+v, %v", b, err)
	}
	dirs, _ := s.LayerDirs(ctx, b.ID)
	if len(dirs) != 2 || readFile(t, filepath.Join(dirs[1], "etc/os-release")) != "ID=legacy\n" {
		t.Errorf("LayerDirs = %v", dirs)
	}
	// A saved copy still round-trips, now with OCI manifests.
	var buf bytes.Buffer
	if err := s.Save(ctx, &buf, []string{"legacy:b"}); err != nil {
		t.Fatal(err)
	}
	if imgs, err := openStore(t).Load(ctx, &buf, nil); err != nil || imgs[0].ID != b.ID {
		t.Errorf("reload = %v, %v", imgs, err)
	}

	for what, links := range map[string][]tarEntry{
		"escaping link": {symlink("l2/layer.tar", "../../../etc/passwd")},
		"link loop":     {symlink("l2/layer.tar", "../l3/x"), symlink("l3/x", "../l2/layer.tar")},
	} {
		bad := append([]tarEntry{file("manifest.json", manifest), file("a.json", string(cfgA)), file("b.json", string(cfgB)),
			file("l1/layer.tar", string(base)), file("l3/layer.tar", string(top))}, links...)
		_, err := openStore(t).Load(ctx, bytes.NewReader(tarBytes(t, bad...)), nil)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", what, err)
		}
	}
}

func digestOf(b []byte) string {
	return "sha256:" + hexSHA256(b)
}
