package hcs

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"

	"github.com/berth-dev/berth/guestagent/image"
)

// ImageStore is the part of *image.Store that StoreImages uses.
type ImageStore interface {
	Get(ctx context.Context, nameOrID string) (*image.Image, error)
	Save(ctx context.Context, w io.Writer, names []string) error
}

// LayerImporter writes one uncompressed layer tar into dir over parentDirs (topmost first); ImportLayer
// is the real one.
type LayerImporter func(ctx context.Context, r io.Reader, dir string, parentDirs []string) (int64, error)

// StoreImages resolves images of berth's image store into imported Windows layer folders: the first time
// an image runs, its layers are streamed out of the store (Save's archive), matched to the image's diffIDs
// by hashing them, and imported bottom-up into LayerRoot/<chain ID>. A "complete" marker makes each
// import happen once.
type StoreImages struct {
	// Store is berth's image store.
	Store ImageStore
	// LayerRoot is the windowsfilter directory (RuntimeConfig.LayerRoot).
	LayerRoot string
	// Import writes a layer; nil means ImportLayer.
	Import LayerImporter

	mu sync.Mutex // serialises imports
}

// completeMarker marks a layer folder whose import finished.
const completeMarker = ".berth-complete"

var _ Images = (*StoreImages)(nil)

// Resolve returns the image's config and its layer folders (topmost first), importing missing layers.
func (si *StoreImages) Resolve(ctx context.Context, ref string) (ResolvedImage, error) {
	img, err := si.Store.Get(ctx, ref)
	if err != nil {
		return ResolvedImage{}, err
	}
	if img.Config.OS != "" && img.Config.OS != "windows" {
		return ResolvedImage{}, fmt.Errorf("%w: image %s is for %s, not windows", ErrInvalidConfig, ref, img.Config.OS)
	}
	dirs, err := si.layerDirs(ctx, img)
	if err != nil {
		return ResolvedImage{}, fmt.Errorf("layers of %s: %w", ref, err)
	}
	c := img.Config.Config
	return ResolvedImage{
		ID: img.ID.String(),
		Config: ImageConfig{
			Env: c.Env, Entrypoint: c.Entrypoint, Cmd: c.Cmd, WorkingDir: c.WorkingDir, User: c.User,
			ArgsEscaped: c.ArgsEscaped, //nolint:staticcheck // Windows images still set it
		},
		LayerFolders: dirs,
	}, nil
}

// layerDirs returns the image's layer folders, topmost first, importing the missing ones.
func (si *StoreImages) layerDirs(ctx context.Context, img *image.Image) ([]string, error) {
	if len(img.Layers) == 0 {
		return nil, fmt.Errorf("%w: image has no layers", ErrInvalidConfig)
	}
	chains := identity.ChainIDs(slices.Clone(img.Layers))
	dirs := make([]string, len(chains)) // bottom first
	missing := false
	for i, ch := range chains {
		dirs[i] = filepath.Join(si.LayerRoot, ch.Encoded())
		if _, err := os.Stat(filepath.Join(dirs[i], completeMarker)); err != nil {
			missing = true
		}
	}
	if missing {
		si.mu.Lock()
		err := si.importLayers(ctx, img, dirs)
		si.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	slices.Reverse(dirs)
	return dirs, nil
}

// importLayers spools the image's layer blobs out of the store, then imports those not yet complete.
func (si *StoreImages) importLayers(ctx context.Context, img *image.Image, dirs []string) error {
	spool, err := os.MkdirTemp(si.LayerRoot, ".spool-")
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer os.RemoveAll(spool)
	byDiffID, err := spoolLayers(ctx, si.Store, img, spool)
	if err != nil {
		return err
	}
	imp := si.Import
	if imp == nil {
		imp = ImportLayer
	}
	for i, diffID := range img.Layers {
		if _, err := os.Stat(filepath.Join(dirs[i], completeMarker)); err == nil {
			continue
		}
		path, ok := byDiffID[diffID]
		if !ok {
			return fmt.Errorf("%w: layer %s not in the store's archive", image.ErrCorrupt, diffID)
		}
		if err := os.RemoveAll(dirs[i]); err != nil { // a half-imported folder
			return fmt.Errorf("layer %s: %w", diffID, err)
		}
		parents := slices.Clone(dirs[:i])
		slices.Reverse(parents)
		if err := importFile(ctx, imp, path, dirs[i], parents); err != nil {
			return fmt.Errorf("layer %s: %w", diffID, err)
		}
		if err := os.WriteFile(filepath.Join(dirs[i], completeMarker), nil, 0o600); err != nil {
			return fmt.Errorf("layer %s: %w", diffID, err)
		}
	}
	return nil
}

func importFile(ctx context.Context, imp LayerImporter, path, dir string, parents []string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := decompress(f)
	if err != nil {
		return err
	}
	_, err = imp(ctx, r, dir, parents)
	return err
}

// spoolLayers streams the image out of the store and keeps each blob that is one of its layers (found by
// the sha256 of its uncompressed bytes) as a file in dir, by diffID.
func spoolLayers(ctx context.Context, st ImageStore, img *image.Image, dir string) (map[digest.Digest]string, error) {
	want := map[digest.Digest]bool{}
	for _, d := range img.Layers {
		want[d] = true
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(st.Save(ctx, pw, []string{img.ID.String()})) }()
	defer pr.Close()
	out := map[digest.Digest]string{}
	tr := tar.NewReader(pr)
	for n := 0; ; n++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read saved image: %w", err)
		}
		if h.Typeflag != tar.TypeReg || !strings.HasPrefix(h.Name, "blobs/sha256/") {
			continue
		}
		path := filepath.Join(dir, fmt.Sprintf("blob-%d", n))
		diffID, err := spoolBlob(tr, path)
		if err != nil {
			return nil, fmt.Errorf("blob %s: %w", h.Name, err)
		}
		if want[diffID] {
			out[diffID] = path
		} else {
			os.Remove(path) // the config, the manifest or a blob that is not a layer tar
		}
	}
	return out, nil
}

// spoolBlob copies r to path and returns the digest of its uncompressed content ("" if it does not
// decompress as a layer would).
func spoolBlob(r io.Reader, path string) (digest.Digest, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := io.Copy(f, r); err != nil {
		return "", err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	dr, err := decompress(f)
	if err != nil {
		return "", nil // not a layer
	}
	h := sha256.New()
	if _, err := io.Copy(h, dr); err != nil {
		return "", nil
	}
	return digest.Digest("sha256:" + hex.EncodeToString(h.Sum(nil))), nil
}

// decompress returns the uncompressed stream of a layer blob: gzip or plain tar (zstd is refused).
func decompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(4)
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		return gzip.NewReader(br)
	case len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
		return nil, fmt.Errorf("%w: zstd layers are not supported for Windows images", ErrNotSupported)
	}
	return br, nil
}
