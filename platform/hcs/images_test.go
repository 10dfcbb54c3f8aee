package hcs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/guestagent/image"
)

// fakeStore saves an archive laid out like image.Store's: config, layer blobs (gzip), manifest.
type fakeStore struct {
	img   *image.Image
	blobs [][]byte
	saves int
}

func (f *fakeStore) Get(_ context.Context, ref string) (*image.Image, error) {
	if ref != "win" {
		return nil, image.ErrNotFound
	}
	return f.img, nil
}

func (f *fakeStore) Save(_ context.Context, w io.Writer, names []string) error {
	f.saves++
	tw := tar.NewWriter(w)
	for _, b := range f.blobs {
		h := sha256.Sum256(b)
		tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + hex.EncodeToString(h[:]), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b))})
		tw.Write(b)
	}
	m := []byte(`[{"Config":"x"}]`)
	tw.WriteHeader(&tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(m))})
	tw.Write(m)
	return tw.Close()
}

func gz(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestStoreImagesImportsLayersOnce(t *testing.T) {
	base, app := []byte("base layer tar"), []byte("app layer tar")
	diff := func(b []byte) digest.Digest { return digest.FromBytes(b) }
	st := &fakeStore{
		img: &image.Image{
			ID:     digest.FromString("config"),
			Layers: []digest.Digest{diff(base), diff(app)},
			Config: ocispec.Image{Platform: ocispec.Platform{OS: "windows"}, Config: ocispec.ImageConfig{Cmd: []string{"cmd"}, WorkingDir: `C:\`}},
		},
		// The archive order is not relied on: app before base, plus the config blob.
		blobs: [][]byte{[]byte(`{"os":"windows"}`), gz(t, app), gz(t, base)},
	}
	root := t.TempDir()
	type call struct {
		content string
		dir     string
		parents []string
	}
	var calls []call
	si := &StoreImages{Store: st, LayerRoot: root, Import: func(_ context.Context, r io.Reader, dir string, parents []string) (int64, error) {
		b, err := io.ReadAll(r)
		if err != nil {
			return 0, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return 0, err
		}
		calls = append(calls, call{string(b), dir, parents})
		return int64(len(b)), nil
	}}
	res, err := si.Resolve(context.Background(), "win")
	if err != nil {
		t.Fatal(err)
	}
	baseDir := filepath.Join(root, diff(base).Encoded()) // the chain ID of the bottom layer is its diffID
	if len(res.LayerFolders) != 2 || res.LayerFolders[1] != baseDir {
		t.Fatalf("folders %q (base %s)", res.LayerFolders, baseDir)
	}
	if len(calls) != 2 || calls[0].content != string(base) || calls[0].dir != baseDir || len(calls[0].parents) != 0 ||
		calls[1].content != string(app) || calls[1].dir != res.LayerFolders[0] || !slices.Equal(calls[1].parents, []string{baseDir}) {
		t.Fatalf("imports %+v", calls)
	}
	if res.Config.WorkingDir != `C:\` || res.ID != st.img.ID.String() {
		t.Errorf("resolved %+v", res)
	}
	// Again: nothing is imported or saved; no spool directory is left behind.
	if _, err := si.Resolve(context.Background(), "win"); err != nil || len(calls) != 2 || st.saves != 1 {
		t.Fatalf("second resolve: %v, %d imports, %d saves", err, len(calls), st.saves)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 2 {
		t.Errorf("layer root holds %d entries, want the 2 layers", len(entries))
	}

	// A Linux image is refused; a layer missing from the archive is corruption.
	st.img.Config.OS = "linux"
	if _, err := si.Resolve(context.Background(), "win"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("linux image: %v", err)
	}
	st.img.Config.OS = "windows"
	st.img.Layers = append(st.img.Layers, digest.FromString("absent"))
	if _, err := si.Resolve(context.Background(), "win"); !errors.Is(err, image.ErrCorrupt) {
		t.Errorf("missing layer: %v", err)
	}
}
