package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxMetaSize bounds manifests, configs and indexes read into memory.
const maxMetaSize = 16 << 20

// record is an image in the metadata DB (images/<id hex>.json). Tags live in
// refs.json; the config and manifest are blobs.
type record struct {
	ID                digest.Digest `json:"id"`
	Manifest          digest.Digest `json:"manifest"`
	ManifestMediaType string        `json:"manifestMediaType"`
	Layers            []layerRef    `json:"layers"`
	Size              int64         `json:"size"`
	Added             time.Time     `json:"added"`

	config ocispec.Image // parsed from the config blob
}

// layerRef ties a manifest layer (compressed blob) to its unpacked layer.
type layerRef struct {
	Blob      digest.Digest `json:"blob"`
	MediaType string        `json:"mediaType"`
	BlobSize  int64         `json:"blobSize"`
	DiffID    digest.Digest `json:"diffID"`
	ChainID   digest.Digest `json:"chainID"`
	Size      int64         `json:"size"` // unpacked bytes
}

// blobs lists every blob the image needs.
func (r *record) blobs() []digest.Digest {
	out := []digest.Digest{r.ID, r.Manifest}
	for _, l := range r.Layers {
		out = append(out, l.Blob)
	}
	return out
}

func open(opts Options) (*Store, error) {
	if opts.Root == "" {
		return nil, fmt.Errorf("open image store: empty root: %w", ErrInvalid)
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("open image store %s: %w", opts.Root, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	plat := opts.Platform
	if plat.OS == "" {
		plat.OS = "linux"
	}
	if plat.Architecture == "" {
		plat.Architecture = runtime.GOARCH
	}
	s := &Store{
		root:     root,
		log:      log.With("store", root),
		unpriv:   opts.Unprivileged,
		inUse:    opts.InUse,
		platform: plat,
		images:   make(map[digest.Digest]*record),
		refs:     make(map[string]digest.Digest),
		leases:   make(map[string]int),
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("open image store %s: %w", root, err)
	}
	lf, err := lockRoot(filepath.Join(root, fileLock))
	if err != nil {
		return nil, fmt.Errorf("open image store %s: locked by another process (%v): %w", root, err, ErrInUse)
	}
	s.lockFile = lf
	if err := s.recover(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("open image store %s: %w", root, err)
	}
	return s, nil
}

func (s *Store) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.lockFile.Close()
}

// recover brings the store to a consistent state after a crash: temporary
// files, half-unpacked layers, images with missing content, dangling
// references and unreferenced blobs and layers are removed.
func (s *Store) recover() error {
	if err := os.RemoveAll(s.tmpDir()); err != nil {
		return fmt.Errorf("clean tmp: %w", err)
	}
	for _, d := range []string{dirTmp, filepath.Join(dirBlobs, "sha256"), dirLayers, dirImages} {
		if err := os.MkdirAll(filepath.Join(s.root, d), 0o700); err != nil {
			return err
		}
	}
	// Layers: a directory without its metadata file was interrupted.
	ents, err := os.ReadDir(filepath.Join(s.root, dirLayers))
	if err != nil {
		return err
	}
	for _, e := range ents {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if e.IsDir() && d.Validate() == nil && s.hasLayer(d) {
			continue
		}
		s.log.Info("removing incomplete layer", "layer", e.Name())
		if err := os.RemoveAll(filepath.Join(s.root, dirLayers, e.Name())); err != nil {
			return err
		}
	}
	// Images.
	ents, err = os.ReadDir(filepath.Join(s.root, dirImages))
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(s.root, dirImages, e.Name())
		rec, err := s.loadRecord(p)
		if err != nil {
			s.log.Warn("dropping image with missing or bad content", "file", e.Name(), "err", err)
			if err := os.Remove(p); err != nil {
				return err
			}
			continue
		}
		s.images[rec.ID] = rec
	}
	// References.
	b, err := os.ReadFile(filepath.Join(s.root, fileRefs))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(b, &s.refs); err != nil {
			s.log.Warn("discarding unreadable references", "err", err)
			s.refs = make(map[string]digest.Digest)
		}
	}
	dropped := false
	for k, id := range s.refs {
		if s.images[id] == nil {
			s.log.Warn("dropping reference to missing image", "ref", k, "image", id)
			delete(s.refs, k)
			dropped = true
		}
	}
	if dropped {
		if err := s.saveRefsLocked(); err != nil {
			return err
		}
	}
	// Content no image refers to (left by an interrupted pull or removal).
	var blobs, chains []digest.Digest
	if ents, err = os.ReadDir(filepath.Join(s.root, dirBlobs, "sha256")); err != nil {
		return err
	}
	for _, e := range ents {
		blobs = append(blobs, digest.NewDigestFromEncoded(digest.SHA256, e.Name()))
	}
	if ents, err = os.ReadDir(filepath.Join(s.root, dirLayers)); err != nil {
		return err
	}
	for _, e := range ents {
		chains = append(chains, digest.NewDigestFromEncoded(digest.SHA256, e.Name()))
	}
	s.mu.Lock()
	doomed, _ := s.collectLocked(blobs, chains)
	s.mu.Unlock()
	s.removeDoomed(doomed)
	return nil
}

// loadRecord reads an image record and checks that all its content exists.
func (s *Store) loadRecord(path string) (*record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	if checkDigest(rec.ID) != nil || filepath.Base(path) != rec.ID.Encoded()+".json" {
		return nil, fmt.Errorf("bad image id %q", rec.ID)
	}
	cfg, err := s.readBlob(rec.ID, maxMetaSize)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(cfg, &rec.config); err != nil {
		return nil, fmt.Errorf("config %s: %w", rec.ID, err)
	}
	for _, d := range rec.blobs() {
		if checkDigest(d) != nil || !s.hasBlob(d) {
			return nil, fmt.Errorf("blob %s missing", d)
		}
	}
	for _, l := range rec.Layers {
		if checkDigest(l.ChainID) != nil || !s.hasLayer(l.ChainID) {
			return nil, fmt.Errorf("layer %s missing", l.ChainID)
		}
	}
	return &rec, nil
}

func (s *Store) saveRefsLocked() error {
	b, err := json.MarshalIndent(s.refs, "", "\t")
	if err != nil {
		return err
	}
	return s.writeFileAtomic(filepath.Join(s.root, fileRefs), b)
}

func (s *Store) saveRecord(rec *record) error {
	b, err := json.MarshalIndent(rec, "", "\t")
	if err != nil {
		return err
	}
	return s.writeFileAtomic(filepath.Join(s.root, dirImages, rec.ID.Encoded()+".json"), b)
}

// Leases keep blobs and layers that an operation in flight relies on from
// being collected by a concurrent Remove.
func blobKey(d digest.Digest) string  { return "blob:" + d.String() }
func layerKey(d digest.Digest) string { return "layer:" + d.String() }

func (s *Store) acquire(keys ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		s.leases[k]++
	}
}

func (s *Store) releaseLocked(keys ...string) {
	for _, k := range keys {
		if s.leases[k]--; s.leases[k] <= 0 {
			delete(s.leases, k)
		}
	}
}

// doomed is content chosen for deletion.
type doomed struct {
	blobs  []digest.Digest
	layers []string // directories already moved under Root/tmp
}

// collectLocked picks, among the candidates, the blobs and layers that no
// image references and no operation leases. Layer directories are renamed
// into Root/tmp at once (so they disappear atomically from layers/); the
// slow deletion happens in removeDoomed without the lock.
func (s *Store) collectLocked(blobs, chains []digest.Digest) (doomed, []digest.Digest) {
	usedBlobs := make(map[digest.Digest]bool)
	usedLayers := make(map[digest.Digest]bool)
	for _, rec := range s.images {
		for _, b := range rec.blobs() {
			usedBlobs[b] = true
		}
		for _, l := range rec.Layers {
			usedLayers[l.ChainID] = true
		}
	}
	var out doomed
	var deletedLayers []digest.Digest
	seen := make(map[string]bool)
	for _, b := range blobs {
		if usedBlobs[b] || s.leases[blobKey(b)] > 0 || seen[blobKey(b)] || checkDigest(b) != nil {
			continue
		}
		seen[blobKey(b)] = true
		out.blobs = append(out.blobs, b)
	}
	for _, c := range chains {
		if usedLayers[c] || s.leases[layerKey(c)] > 0 || seen[layerKey(c)] || checkDigest(c) != nil {
			continue
		}
		seen[layerKey(c)] = true
		dir := s.layerDir(c)
		if _, err := os.Lstat(dir); err != nil {
			continue
		}
		tmp, err := os.MkdirTemp(s.tmpDir(), "rm-")
		if err == nil {
			err = os.Rename(dir, filepath.Join(tmp, "layer"))
		}
		if err != nil {
			s.log.Warn("cannot remove layer", "layer", c, "err", err)
			continue
		}
		out.layers = append(out.layers, tmp)
		deletedLayers = append(deletedLayers, c)
	}
	for _, b := range out.blobs {
		if err := os.Remove(s.blobPath(b)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("cannot remove blob", "blob", b, "err", err)
		}
	}
	return out, deletedLayers
}

func (s *Store) removeDoomed(d doomed) {
	for _, dir := range d.layers {
		if err := os.RemoveAll(dir); err != nil {
			s.log.Warn("cannot remove layer directory", "dir", dir, "err", err)
		}
	}
	if len(d.blobs) > 0 {
		syncDir(filepath.Join(s.root, dirBlobs, "sha256"))
	}
}

// resolved is the outcome of looking a name up.
type resolved struct {
	rec  *record
	byID bool     // named by image ID or ID prefix
	ref  imageRef // set when named by reference
}

// resolveLocked finds an image by ID, "sha256:" ID, reference or unique ID
// prefix (≥ 4 hex digits), in Docker's order.
func (s *Store) resolveLocked(nameOrID string) (resolved, error) {
	hex, hasAlg := strings.CutPrefix(nameOrID, "sha256:")
	if isFullHex(hex) {
		if rec := s.images[digest.NewDigestFromEncoded(digest.SHA256, hex)]; rec != nil {
			return resolved{rec: rec, byID: true}, nil
		}
		return resolved{}, fmt.Errorf("no such image: %s: %w", nameOrID, ErrNotFound)
	}
	if !hasAlg {
		ref, err := parseRef(nameOrID)
		if err == nil {
			if id, ok := s.refs[ref.key]; ok {
				if rec := s.images[id]; rec != nil {
					return resolved{rec: rec, ref: ref}, nil
				}
			}
		} else if !isHex(hex) {
			return resolved{}, err
		}
	}
	if isHex(hex) && len(hex) >= 4 {
		var found *record
		for id, rec := range s.images {
			if strings.HasPrefix(id.Encoded(), hex) {
				if found != nil {
					return resolved{}, fmt.Errorf("image ID prefix %s matches several images: %w", nameOrID, ErrAmbiguous)
				}
				found = rec
			}
		}
		if found != nil {
			return resolved{rec: found, byID: true}, nil
		}
	}
	return resolved{}, fmt.Errorf("no such image: %s: %w", nameOrID, ErrNotFound)
}

// imageLocked builds the public view of rec.
func (s *Store) imageLocked(rec *record) *Image {
	img := &Image{ID: rec.ID, Config: rec.config, Size: rec.Size}
	if rec.config.Created != nil {
		img.Created = *rec.config.Created
	}
	for k, id := range s.refs {
		if id != rec.ID {
			continue
		}
		if isDigestKey(k) {
			img.RepoDigests = append(img.RepoDigests, familiarName(k))
		} else {
			img.RepoTags = append(img.RepoTags, familiarName(k))
		}
	}
	sort.Strings(img.RepoTags)
	sort.Strings(img.RepoDigests)
	for _, l := range rec.Layers {
		img.Layers = append(img.Layers, l.DiffID)
	}
	return img
}

func (s *Store) checkOpenLocked() error {
	if s.closed {
		return fmt.Errorf("image store %s is closed: %w", s.root, ErrInvalid)
	}
	return nil
}

func (s *Store) get(ctx context.Context, nameOrID string) (*Image, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpenLocked(); err != nil {
		return nil, err
	}
	r, err := s.resolveLocked(nameOrID)
	if err != nil {
		return nil, err
	}
	return s.imageLocked(r.rec), nil
}

func (s *Store) list(ctx context.Context) ([]*Image, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpenLocked(); err != nil {
		return nil, err
	}
	out := make([]*Image, 0, len(s.images))
	for _, rec := range s.images {
		out = append(out, s.imageLocked(rec))
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func (s *Store) tag(ctx context.Context, src, ref string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r, err := parseRef(ref)
	if err != nil {
		return err
	}
	if r.tag == "" {
		return fmt.Errorf("tag %s: refusing to create a tag with a digest reference: %w", ref, ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpenLocked(); err != nil {
		return err
	}
	res, err := s.resolveLocked(src)
	if err != nil {
		return err
	}
	return s.setRefsLocked(map[string]digest.Digest{r.key: res.rec.ID})
}

// setRefsLocked points references at images and persists the table; on a
// write failure the in-memory table is restored.
func (s *Store) setRefsLocked(set map[string]digest.Digest) error {
	old := make(map[string]digest.Digest, len(set))
	had := make(map[string]bool, len(set))
	for k, v := range set {
		old[k], had[k] = s.refs[k]
		s.refs[k] = v
	}
	if err := s.saveRefsLocked(); err != nil {
		for k := range set {
			if had[k] {
				s.refs[k] = old[k]
			} else {
				delete(s.refs, k)
			}
		}
		return err
	}
	return nil
}

func (s *Store) layerDirs(ctx context.Context, id digest.Digest) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpenLocked(); err != nil {
		return nil, err
	}
	rec := s.images[id]
	if rec == nil {
		return nil, fmt.Errorf("no such image: %s: %w", id, ErrNotFound)
	}
	dirs := make([]string, 0, len(rec.Layers))
	for i := len(rec.Layers) - 1; i >= 0; i-- {
		dirs = append(dirs, s.layerFSDir(rec.Layers[i].ChainID))
	}
	return dirs, nil
}

// RawConfig returns the image config of image id exactly as stored (its
// sha256 is the ID), for callers that need fields ocispec.Image drops, such
// as Docker's Healthcheck or OnBuild.
func (s *Store) RawConfig(ctx context.Context, id digest.Digest) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	err := s.checkOpenLocked()
	if err == nil && s.images[id] == nil {
		err = fmt.Errorf("no such image: %s: %w", id, ErrNotFound)
	}
	if err == nil {
		// Keep the blob while it is read without the lock.
		s.leases[blobKey(id)]++
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	defer func() {
		s.mu.Lock()
		s.releaseLocked(blobKey(id))
		s.mu.Unlock()
	}()
	return s.readBlob(id, maxMetaSize)
}
