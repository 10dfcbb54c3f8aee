package image

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// op tracks one pull or load: the content it leases and the content it
// created, which is collected again at the end unless an image now uses it
// (so a failed operation leaves the store as it found it).
type op struct {
	s      *Store
	mu     sync.Mutex // guards the slices: downloads run concurrently
	keys   []string
	blobs  []digest.Digest
	layers []digest.Digest
}

func (s *Store) newOp() *op { return &op{s: s} }

func (o *op) lease(keys ...string) {
	o.s.acquire(keys...)
	o.mu.Lock()
	o.keys = append(o.keys, keys...)
	o.mu.Unlock()
}

func (o *op) createdBlob(d digest.Digest) {
	o.mu.Lock()
	o.blobs = append(o.blobs, d)
	o.mu.Unlock()
}

func (o *op) createdLayer(d digest.Digest) {
	o.mu.Lock()
	o.layers = append(o.layers, d)
	o.mu.Unlock()
}

// end releases the leases and removes created content no image uses.
func (o *op) end() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.s.mu.Lock()
	o.s.releaseLocked(o.keys...)
	d, _ := o.s.collectLocked(o.blobs, o.layers)
	o.s.mu.Unlock()
	o.s.removeDoomed(d)
}

// newImage is a verified image ready to be recorded: all layer blobs stored
// and unpacked.
type newImage struct {
	manifest          []byte
	manifestMediaType string
	config            []byte
	parsed            ocispec.Image
	layers            []layerRef
	refs              []string // normalized references to point at it
}

// commitImage stores config and manifest blobs, writes the image record (if
// the image is new) and points refs at it. existed reports that the image
// was already stored and every ref already pointed at it.
func (s *Store) commitImage(o *op, n *newImage) (img *Image, upToDate bool, err error) {
	id := digest.FromBytes(n.config)
	md := digest.FromBytes(n.manifest)
	o.lease(blobKey(id), blobKey(md))
	for _, b := range []struct {
		data []byte
		d    digest.Digest
	}{{n.config, id}, {n.manifest, md}} {
		_, created, err := s.writeBlob(b.data, b.d)
		if err != nil {
			return nil, false, err
		}
		if created {
			o.createdBlob(b.d)
		}
	}
	rec := &record{ID: id, Manifest: md, ManifestMediaType: n.manifestMediaType, Layers: n.layers, Added: time.Now().UTC(), config: n.parsed}
	for _, l := range n.layers {
		rec.Size += l.Size
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpenLocked(); err != nil {
		return nil, false, err
	}
	upToDate = s.images[id] != nil
	if !upToDate {
		if err := s.saveRecord(rec); err != nil {
			return nil, false, err
		}
		s.images[id] = rec
	}
	set := make(map[string]digest.Digest, len(n.refs))
	for _, k := range n.refs {
		if s.refs[k] != id {
			upToDate = false
		}
		set[k] = id
	}
	if len(set) > 0 {
		if err := s.setRefsLocked(set); err != nil {
			return nil, false, err
		}
	}
	return s.imageLocked(s.images[id]), upToDate, nil
}

// parseConfig checks an image config and the manifest layers against it.
func parseConfig(b []byte, layers int) (ocispec.Image, error) {
	var cfg ocispec.Image
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("image config: %v: %w", err, ErrInvalid)
	}
	if cfg.RootFS.Type != "layers" {
		return cfg, fmt.Errorf("image config: rootfs type %q, expected \"layers\": %w", cfg.RootFS.Type, ErrInvalid)
	}
	if len(cfg.RootFS.DiffIDs) != layers {
		return cfg, fmt.Errorf("image config lists %d layers, manifest %d: %w", len(cfg.RootFS.DiffIDs), layers, ErrInvalid)
	}
	for _, d := range cfg.RootFS.DiffIDs {
		if err := checkDigest(d); err != nil {
			return cfg, fmt.Errorf("image config: diff id: %w", err)
		}
	}
	return cfg, nil
}

// Media types the store understands.
func isIndexType(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == string(types.DockerManifestList)
}

func isManifestType(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == string(types.DockerManifestSchema2)
}

func isSchema1Type(mt string) bool {
	return mt == string(types.DockerManifestSchema1) || mt == string(types.DockerManifestSchema1Signed)
}

func isConfigType(mt string) bool {
	return mt == ocispec.MediaTypeImageConfig || mt == string(types.DockerConfigJSON)
}

func isLayerType(mt string) bool {
	switch mt {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd,
		string(types.OCIRestrictedLayer), string(types.OCIUncompressedRestrictedLayer),
		string(types.DockerLayer), string(types.DockerForeignLayer), string(types.DockerUncompressedLayer):
		return true
	}
	return false
}

// sniffMediaType guesses the media type of a manifest served without one.
func sniffMediaType(b []byte) string {
	var probe struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Manifests     json.RawMessage   `json:"manifests"`
		Config        json.RawMessage   `json:"config"`
		FSLayers      []json.RawMessage `json:"fsLayers"`
	}
	if json.Unmarshal(b, &probe) != nil {
		return ""
	}
	switch {
	case probe.MediaType != "":
		return probe.MediaType
	case probe.SchemaVersion == 1 || probe.FSLayers != nil:
		return string(types.DockerManifestSchema1)
	case probe.Manifests != nil:
		return ocispec.MediaTypeImageIndex
	case probe.Config != nil:
		return ocispec.MediaTypeImageManifest
	}
	return ""
}

// parseManifest decodes an image manifest and validates its descriptors.
func parseManifest(b []byte) (ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("manifest: %v: %w", err, ErrInvalid)
	}
	if m.SchemaVersion != 2 {
		return m, fmt.Errorf("manifest: schema version %d: %w", m.SchemaVersion, ErrInvalid)
	}
	if err := checkDigest(m.Config.Digest); err != nil {
		return m, fmt.Errorf("manifest config: %w", err)
	}
	if m.Config.MediaType != "" && !isConfigType(m.Config.MediaType) {
		return m, fmt.Errorf("manifest config media type %q is not an image config: %w", m.Config.MediaType, ErrInvalid)
	}
	for _, l := range m.Layers {
		if err := checkDigest(l.Digest); err != nil {
			return m, fmt.Errorf("manifest layer: %w", err)
		}
		if !isLayerType(l.MediaType) {
			return m, fmt.Errorf("manifest layer %s: unsupported media type %q: %w", l.Digest, l.MediaType, ErrInvalid)
		}
	}
	return m, nil
}

// platformString formats a platform as Docker does: os/arch[/variant].
func platformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

func normVariant(arch, v string) string {
	if v == "" {
		switch arch {
		case "arm64":
			return "v8"
		case "arm":
			return "v7"
		}
	}
	return v
}

// matchPlatform reports whether an index entry's platform suits want.
func matchPlatform(want ocispec.Platform, have *ocispec.Platform) bool {
	if have == nil || have.OS != want.OS || have.Architecture != want.Architecture {
		return false
	}
	if want.Variant != "" && normVariant(want.Architecture, have.Variant) != normVariant(want.Architecture, want.Variant) {
		return false
	}
	return true
}

// choosePlatform picks the manifest for want from an index.
func choosePlatform(idx ocispec.Index, want ocispec.Platform) (ocispec.Descriptor, error) {
	for _, d := range idx.Manifests {
		if matchPlatform(want, d.Platform) {
			return d, nil
		}
	}
	return ocispec.Descriptor{}, fmt.Errorf("no matching manifest for %s in the manifest list entries: %w", platformString(want), ErrNotFound)
}
