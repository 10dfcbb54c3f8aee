package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	digest "github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/guestagent/archive"
)

// layerInfo is layers/<chainID>/meta.json.
type layerInfo struct {
	ChainID digest.Digest `json:"chainID"`
	DiffID  digest.Digest `json:"diffID"`
	Size    int64         `json:"size"` // bytes of file content unpacked
	Blob    digest.Digest `json:"compressedDigest"`
}

func (s *Store) layerDir(chain digest.Digest) string {
	return filepath.Join(s.root, dirLayers, chain.Encoded())
}

// layerFSDir is the unpacked tree of a layer: an overlay lowerdir.
func (s *Store) layerFSDir(chain digest.Digest) string {
	return filepath.Join(s.layerDir(chain), layerFS)
}

func (s *Store) hasLayer(chain digest.Digest) bool {
	_, err := s.readLayerInfo(chain)
	return err == nil
}

func (s *Store) readLayerInfo(chain digest.Digest) (*layerInfo, error) {
	b, err := os.ReadFile(filepath.Join(s.layerDir(chain), layerMeta))
	if err != nil {
		return nil, err
	}
	var li layerInfo
	if err := json.Unmarshal(b, &li); err != nil {
		return nil, fmt.Errorf("layer %s: %w", chain, err)
	}
	if li.ChainID != chain {
		return nil, fmt.Errorf("layer %s: metadata names %s", chain, li.ChainID)
	}
	return &li, nil
}

// chainIDs computes the OCI chain IDs of a stack of diffIDs (bottom first).
func chainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}

func (s *Store) unpackOptions() archive.Options {
	if s.unpriv {
		return archive.Options{
			Whiteouts:       archive.WhiteoutApply,
			IgnoreOwnership: true,
			SkipDevices:     true,
			IgnoreXattrs:    true,
		}
	}
	return archive.Options{Whiteouts: archive.WhiteoutOverlay}
}

// unpackLayer extracts the stored blob into layers/<chain>/fs, checking that
// the uncompressed stream hashes to diffID; only then is meta.json written.
// The caller holds the layer's key lock. created is false when the layer was
// already there. progress gets compressed bytes read.
func (s *Store) unpackLayer(ctx context.Context, blob digest.Digest, diffID, chain digest.Digest, progress func(n int64)) (li *layerInfo, created bool, err error) {
	if li, err := s.readLayerInfo(chain); err == nil {
		return li, false, nil
	}
	dir := s.layerDir(chain)
	if err := os.RemoveAll(dir); err != nil {
		return nil, false, fmt.Errorf("layer %s: %w", chain, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("layer %s: %w", chain, err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	f, err := os.Open(s.blobPath(blob))
	if err != nil {
		return nil, false, fmt.Errorf("layer %s: blob %s: %w", chain, blob, err)
	}
	defer f.Close()
	dr, err := archive.Decompress(&progressReader{r: f, report: progress})
	if err != nil {
		return nil, false, fmt.Errorf("layer %s: decompress blob %s: %w", chain, blob, err)
	}
	defer dr.Close()
	h := digest.SHA256.Digester()
	tee := io.TeeReader(dr, h.Hash())
	st, err := archive.Unpack(ctx, filepath.Join(dir, layerFS), tee, s.unpackOptions())
	if err != nil {
		if errors.Is(err, archive.ErrUnsafePath) || errors.Is(err, archive.ErrBudget) || errors.Is(err, archive.ErrUnsupported) {
			return nil, false, fmt.Errorf("layer %s: %w: %w", chain, ErrInvalid, err)
		}
		return nil, false, fmt.Errorf("layer %s: %w", chain, err)
	}
	// The diffID covers the whole stream, end-of-archive padding included.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return nil, false, fmt.Errorf("layer %s: read blob %s: %w", chain, blob, err)
	}
	if got := h.Digest(); got != diffID {
		return nil, false, fmt.Errorf("layer %s: uncompressed content has digest %s, config says %s: %w", chain, got, diffID, ErrCorrupt)
	}
	if err := syncFS(dir); err != nil {
		return nil, false, fmt.Errorf("layer %s: sync: %w", chain, err)
	}
	li = &layerInfo{ChainID: chain, DiffID: diffID, Size: st.Bytes, Blob: blob}
	b, err := json.Marshal(li)
	if err != nil {
		return nil, false, err
	}
	if err := s.writeFileAtomic(filepath.Join(dir, layerMeta), b); err != nil {
		return nil, false, fmt.Errorf("layer %s: %w", chain, err)
	}
	return li, true, nil
}
