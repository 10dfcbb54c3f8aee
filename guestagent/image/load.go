package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/guestagent/archive"
)

// Bounds on an imported archive (its blobs are spooled to disk, not memory).
const (
	maxLoadEntries = 1 << 16
	maxLinkHops    = 16
)

// annotationImageName is the full reference containerd and Docker 25+ put on
// index.json entries.
const annotationImageName = "io.containerd.image.name"

// spooled is one regular file of the archive, copied into Root/tmp.
type spooled struct {
	path   string
	digest digest.Digest
	size   int64
}

// loadArchive is the spooled content of an archive, by entry name. Entry
// names are only ever map keys; files on disk are numbered.
type loadArchive struct {
	files map[string]*spooled
	links map[string]string
}

// cleanEntry normalizes a tar entry name to a relative slash path.
func cleanEntry(n string) string {
	return strings.TrimPrefix(path.Clean("/"+n), "/")
}

func (a *loadArchive) lookup(n string) (*spooled, error) {
	n = cleanEntry(n)
	for range maxLinkHops {
		if f, ok := a.files[n]; ok {
			return f, nil
		}
		t, ok := a.links[n]
		if !ok {
			return nil, fmt.Errorf("archive has no file %q: %w", n, ErrInvalid)
		}
		n = t
	}
	return nil, fmt.Errorf("archive file %q: too many links: %w", n, ErrInvalid)
}

// blob looks up blobs/<alg>/<hex> and checks it against its descriptor.
func (a *loadArchive) blob(d ocispec.Descriptor) (*spooled, error) {
	if err := checkDigest(d.Digest); err != nil {
		return nil, err
	}
	f, err := a.lookup("blobs/" + d.Digest.Algorithm().String() + "/" + d.Digest.Encoded())
	if err != nil {
		return nil, err
	}
	if f.digest != d.Digest || (d.Size > 0 && f.size != d.Size) {
		return nil, fmt.Errorf("archive blob %s: content has digest %s, %d bytes: %w", d.Digest, f.digest, f.size, ErrCorrupt)
	}
	return f, nil
}

func (f *spooled) read(limit int64) ([]byte, error) {
	if f.size > limit {
		return nil, fmt.Errorf("archive file of %d bytes is too large: %w", f.size, ErrInvalid)
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return nil, fmt.Errorf("read spooled file: %w", err)
	}
	return b, nil
}

// spool copies the archive into dir (flat, numbered files), hashing each file.
func (s *Store) spool(ctx context.Context, r io.Reader, dir string) (*loadArchive, error) {
	a := &loadArchive{files: make(map[string]*spooled), links: make(map[string]string)}
	tr := tar.NewReader(r)
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %v: %w", err, ErrInvalid)
		}
		if n >= maxLoadEntries {
			return nil, fmt.Errorf("archive has more than %d entries: %w", maxLoadEntries, ErrInvalid)
		}
		name := cleanEntry(hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeReg:
			f, err := os.Create(filepath.Join(dir, strconv.Itoa(n)))
			if err != nil {
				return nil, fmt.Errorf("spool %s: %w", name, err)
			}
			h := digest.SHA256.Digester()
			size, err := io.Copy(io.MultiWriter(f, h.Hash()), &ctxReader{ctx: ctx, r: tr})
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, fmt.Errorf("spool %s: %w", name, err)
			}
			a.files[name] = &spooled{path: f.Name(), digest: h.Digest(), size: size}
		case tar.TypeSymlink:
			target := hdr.Linkname
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(name), target)
			}
			a.links[name] = cleanEntry(target)
		case tar.TypeLink:
			a.links[name] = cleanEntry(hdr.Linkname)
		}
	}
	return a, nil
}

// ctxReader stops a long copy when ctx is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// candidate is an image found in an archive, checked but not yet stored.
type candidate struct {
	manifest          []byte
	manifestMediaType string
	config            []byte
	parsed            ocispec.Image
	layers            []*spooled
	layerTypes        []string
	refs              []string
}

func (s *Store) load(ctx context.Context, r io.Reader, progress ProgressFunc) ([]*Image, error) {
	s.mu.Lock()
	err := s.checkOpenLocked()
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	progress = syncProgress(progress)
	dr, err := archive.Decompress(r)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer dr.Close()
	dir, err := os.MkdirTemp(s.tmpDir(), "load-")
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer os.RemoveAll(dir)
	a, err := s.spool(ctx, dr, dir)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	var cands []*candidate
	_, hasIndex := a.files["index.json"]
	_, hasManifest := a.files["manifest.json"]
	switch {
	case hasIndex:
		cands, err = s.ociCandidates(a)
	case hasManifest:
		cands, err = dockerCandidates(a)
	default:
		err = fmt.Errorf("neither manifest.json nor index.json found: %w", ErrInvalid)
	}
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	o := s.newOp()
	defer o.end()
	var out []*Image
	for _, c := range cands {
		img, err := s.importCandidate(ctx, o, c, progress)
		if err != nil {
			return out, fmt.Errorf("load: %w", err)
		}
		out = append(out, img)
	}
	return out, nil
}

// dockerManifestEntry is one element of a `docker save` manifest.json.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

func readJSON(a *loadArchive, name string, v any) error {
	f, err := a.lookup(name)
	if err != nil {
		return err
	}
	b, err := f.read(maxMetaSize)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %v: %w", name, err, ErrInvalid)
	}
	return nil
}

// tagKeys normalizes the tags of an archive entry.
func tagKeys(tags []string) ([]string, error) {
	var keys []string
	for _, t := range tags {
		r, err := parseRef(t)
		if err != nil {
			return nil, err
		}
		if r.tag == "" {
			continue
		}
		keys = append(keys, r.key)
	}
	return keys, nil
}

// dockerCandidates reads the legacy `docker save` layout: manifest.json,
// <config>.json and layer tars (plain or compressed).
func dockerCandidates(a *loadArchive) ([]*candidate, error) {
	var entries []dockerManifestEntry
	if err := readJSON(a, "manifest.json", &entries); err != nil {
		return nil, err
	}
	byConfig := make(map[digest.Digest]*candidate)
	var out []*candidate
	for _, e := range entries {
		refs, err := tagKeys(e.RepoTags)
		if err != nil {
			return nil, err
		}
		cf, err := a.lookup(e.Config)
		if err != nil {
			return nil, err
		}
		if c := byConfig[cf.digest]; c != nil {
			c.refs = append(c.refs, refs...)
			continue
		}
		config, err := cf.read(maxMetaSize)
		if err != nil {
			return nil, err
		}
		cfg, err := parseConfig(config, len(e.Layers))
		if err != nil {
			return nil, err
		}
		c := &candidate{config: config, parsed: cfg, refs: refs}
		for _, l := range e.Layers {
			lf, err := a.lookup(l)
			if err != nil {
				return nil, err
			}
			mt, err := sniffLayerType(lf.path)
			if err != nil {
				return nil, err
			}
			c.layers = append(c.layers, lf)
			c.layerTypes = append(c.layerTypes, mt)
		}
		// Synthesize the OCI manifest, as Docker does for a loaded image.
		m := ocispec.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: ocispec.MediaTypeImageManifest,
			Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cf.digest, Size: cf.size},
			Layers:    []ocispec.Descriptor{},
		}
		for i, lf := range c.layers {
			m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: c.layerTypes[i], Digest: lf.digest, Size: lf.size})
		}
		if c.manifest, err = json.Marshal(m); err != nil {
			return nil, err
		}
		c.manifestMediaType = ocispec.MediaTypeImageManifest
		byConfig[cf.digest] = c
		out = append(out, c)
	}
	return out, nil
}

// sniffLayerType names a layer file's media type from its first bytes.
func sniffLayerType(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return ocispec.MediaTypeImageLayerGzip, nil
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return ocispec.MediaTypeImageLayerZstd, nil
	}
	return ocispec.MediaTypeImageLayer, nil
}

// annotatedRef returns the image name an OCI index entry carries, if any.
func annotatedRef(ann map[string]string) string {
	if n := ann[annotationImageName]; n != "" {
		return n
	}
	// A bare tag ("latest") names no repository; only full references count.
	if n := ann[ocispec.AnnotationRefName]; strings.ContainsAny(n, ":/@") {
		return n
	}
	return ""
}

// ociCandidates reads an OCI image layout (which Docker 25+ also writes next
// to manifest.json; its RepoTags are merged in).
func (s *Store) ociCandidates(a *loadArchive) ([]*candidate, error) {
	var idx ocispec.Index
	if err := readJSON(a, "index.json", &idx); err != nil {
		return nil, err
	}
	extra := make(map[digest.Digest][]string) // config digest → manifest.json tags
	if _, ok := a.files["manifest.json"]; ok {
		var entries []dockerManifestEntry
		if err := readJSON(a, "manifest.json", &entries); err != nil {
			return nil, err
		}
		for _, e := range entries {
			cf, err := a.lookup(e.Config)
			if err != nil {
				return nil, err
			}
			keys, err := tagKeys(e.RepoTags)
			if err != nil {
				return nil, err
			}
			extra[cf.digest] = append(extra[cf.digest], keys...)
		}
	}
	byManifest := make(map[digest.Digest]*candidate)
	var out []*candidate
	var add func(d ocispec.Descriptor, refs []string, depth int) error
	add = func(d ocispec.Descriptor, refs []string, depth int) error {
		if depth > 4 {
			return fmt.Errorf("index nesting too deep: %w", ErrInvalid)
		}
		f, err := a.blob(d)
		if err != nil {
			return err
		}
		b, err := f.read(maxMetaSize)
		if err != nil {
			return err
		}
		mt := d.MediaType
		if mt == "" {
			mt = sniffMediaType(b)
		}
		switch {
		case isIndexType(mt):
			var sub ocispec.Index
			if err := json.Unmarshal(b, &sub); err != nil {
				return fmt.Errorf("index %s: %v: %w", d.Digest, err, ErrInvalid)
			}
			chosen, err := choosePlatform(sub, s.platform)
			if err != nil {
				return err
			}
			return add(chosen, refs, depth+1)
		case isManifestType(mt):
		default:
			s.log.Info("load: skipping index entry", "digest", d.Digest, "mediaType", mt)
			return nil
		}
		if c := byManifest[d.Digest]; c != nil {
			c.refs = append(c.refs, refs...)
			return nil
		}
		m, err := parseManifest(b)
		if err != nil {
			return err
		}
		cf, err := a.blob(m.Config)
		if err != nil {
			return err
		}
		config, err := cf.read(maxMetaSize)
		if err != nil {
			return err
		}
		cfg, err := parseConfig(config, len(m.Layers))
		if err != nil {
			return err
		}
		c := &candidate{manifest: b, manifestMediaType: mt, config: config, parsed: cfg, refs: refs}
		c.refs = append(c.refs, extra[m.Config.Digest]...)
		for _, l := range m.Layers {
			lf, err := a.blob(l)
			if err != nil {
				return err
			}
			c.layers = append(c.layers, lf)
			c.layerTypes = append(c.layerTypes, l.MediaType)
		}
		byManifest[d.Digest] = c
		out = append(out, c)
		return nil
	}
	for _, d := range idx.Manifests {
		var refs []string
		if n := annotatedRef(d.Annotations); n != "" {
			keys, err := tagKeys([]string{n})
			if err != nil {
				return nil, err
			}
			refs = keys
		}
		if err := add(d, refs, 0); err != nil {
			return nil, err
		}
	}
	for _, c := range out {
		c.refs = dedupe(c.refs)
	}
	return out, nil
}

func dedupe(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// importCandidate stores the layer blobs of c, unpacks them and records the
// image.
func (s *Store) importCandidate(ctx context.Context, o *op, c *candidate, progress ProgressFunc) (*Image, error) {
	chains := chainIDs(c.parsed.RootFS.DiffIDs)
	layers := make([]layerRef, len(c.layers))
	for i, lf := range c.layers {
		d := lf.digest
		o.lease(blobKey(d), layerKey(chains[i]))
		if !s.hasBlob(d) {
			created, err := s.commitFile(lf.path, d)
			if err != nil {
				return nil, err
			}
			if created {
				o.createdBlob(d)
			}
		}
		unlock, err := s.keys.lock(ctx, layerKey(chains[i]))
		if err != nil {
			return nil, err
		}
		id, total := shortID(d), lf.size
		li, created, err := s.unpackLayer(ctx, d, c.parsed.RootFS.DiffIDs[i], chains[i], func(n int64) {
			progress(Progress{ID: id, Status: "Loading layer", Current: n, Total: total})
		})
		unlock()
		if err != nil {
			return nil, err
		}
		if created {
			o.createdLayer(chains[i])
		}
		layers[i] = layerRef{Blob: d, MediaType: c.layerTypes[i], BlobSize: lf.size, DiffID: c.parsed.RootFS.DiffIDs[i], ChainID: chains[i], Size: li.Size}
	}
	img, _, err := s.commitImage(o, &newImage{
		manifest: c.manifest, manifestMediaType: c.manifestMediaType, config: c.config,
		parsed: c.parsed, layers: layers, refs: c.refs,
	})
	return img, err
}
