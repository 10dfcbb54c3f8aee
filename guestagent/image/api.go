// Package image is berth's OCI image store: content-addressed blobs (sha256,
// verified before commit, written with fsync and atomic rename), manifests and
// configs per the OCI image-spec (Docker schema2 accepted), references, pull
// from registries through go-containerregistry, load/save of `docker save` and
// OCI-archive tarballs, and unpacked layers shared between images, ready to be
// stacked as overlayfs lower directories.
package image

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Sentinel errors; returned errors wrap them.
var (
	ErrNotFound  = errors.New("image: not found")
	ErrInUse     = errors.New("image: in use")
	ErrInvalid   = errors.New("image: invalid")         // bad reference, manifest, config or archive
	ErrCorrupt   = errors.New("image: content corrupt") // digest or size mismatch
	ErrAmbiguous = errors.New("image: ambiguous reference")
	// ErrConflict reports a removal Docker refuses with 409 unless forced:
	// an image named by ID that has several names (more than one tag, or
	// names in several repositories). ErrInUse is the other 409 of Remove.
	ErrConflict = errors.New("image: conflict")
	// ErrUnauthorized reports a registry that refused the credentials (or
	// their absence): Docker's "pull access denied".
	ErrUnauthorized = errors.New("image: unauthorized")
)

// Progress is one step of a pull or load, per layer, in Docker's vocabulary.
type Progress struct {
	ID      string // short layer digest (12 hex); for whole-image messages the tag or digest ("Pulling from …") or empty (final lines, as dockerd sends them)
	Status  string // "Pulling fs layer", "Waiting", "Downloading", "Verifying Checksum", "Download complete", "Extracting", "Pull complete", "Already exists", "Loading layer", or a final line such as "Digest: sha256:…"
	Current int64  // bytes done, for Downloading/Extracting/Loading layer
	Total   int64  // bytes in all, when known
}

// ProgressFunc receives progress; it must not block for long.
type ProgressFunc func(Progress)

// Image describes a stored image.
type Image struct {
	ID          digest.Digest // config digest (Docker's image ID)
	RepoTags    []string      // familiar names, e.g. "busybox:latest", "localhost:5000/x:1"
	RepoDigests []string      // e.g. "localhost:5000/x@sha256:…"
	Config      ocispec.Image // the image config (architecture, os, config, rootfs, history)
	Created     time.Time
	Size        int64           // unpacked size of all layers, bytes
	Layers      []digest.Digest // diffIDs, bottom first
}

// Options configure a Store.
type Options struct {
	Root   string // directory holding blobs, layers and metadata
	Logger *slog.Logger
	// Unprivileged unpacks layers without chown, devices or overlay
	// whiteouts (unit tests); such layers are not correct overlay lowerdirs.
	Unprivileged bool
	// InUse reports whether a container uses image id; Remove refuses those
	// unless forced. May be nil. It is called without the store's lock
	// held, so it may take the caller's own locks.
	InUse func(id digest.Digest) bool
	// Platform to select from manifest lists; zero means linux/GOARCH(/variant).
	Platform ocispec.Platform
}

// PullOptions configure Pull.
type PullOptions struct {
	Auth     authn.Authenticator // nil: anonymous, or the default keychain (~/.docker/config.json)
	Progress ProgressFunc
}

// Store is the image store. It is safe for concurrent use.
type Store struct {
	root     string
	log      *slog.Logger
	unpriv   bool
	inUse    func(id digest.Digest) bool
	platform ocispec.Platform
	lockFile io.Closer
	keys     keyedMutex // serialises work on one blob or layer

	mu     sync.Mutex
	closed bool
	images map[digest.Digest]*record // by image ID
	refs   map[string]digest.Digest  // normalized reference → image ID
	leases map[string]int            // blobs and layers an operation in flight relies on
}

// Open opens (creating if needed) the store at opts.Root, recovering from an
// interrupted write (temporary files removed, half-unpacked layers discarded).
func Open(opts Options) (*Store, error) {
	return open(opts)
}

// Close releases the store.
func (s *Store) Close() error { return s.close() }

// Pull fetches ref (e.g. "busybox", "localhost:5000/x:1", "x@sha256:…") for the
// store's platform, verifies and stores every blob, unpacks the layers and
// tags the image. Plain HTTP is used for localhost/127.0.0.1 registries.
func (s *Store) Pull(ctx context.Context, ref string, opts PullOptions) (*Image, error) {
	return s.pull(ctx, ref, opts)
}

// Get resolves a name, a familiar or full reference, an image ID, or a unique
// ID prefix (at least 4 hex digits, with or without "sha256:").
func (s *Store) Get(ctx context.Context, nameOrID string) (*Image, error) {
	return s.get(ctx, nameOrID)
}

// List returns all images.
func (s *Store) List(ctx context.Context) ([]*Image, error) {
	return s.list(ctx)
}

// Tag adds reference ref to the image named by src.
func (s *Store) Tag(ctx context.Context, src, ref string) error {
	return s.tag(ctx, src, ref)
}

// RemoveResult says what Remove did, in Docker's terms.
type RemoveResult struct {
	Untagged []string
	Deleted  []digest.Digest
}

// Remove untags nameOrRef; when the image has no tags left (or it was named
// by ID) and no container uses it, deletes it and the layers and blobs no
// other image shares. force removes all tags of an image named by ID and
// ignores InUse.
func (s *Store) Remove(ctx context.Context, nameOrRef string, force bool) (*RemoveResult, error) {
	return s.remove(ctx, nameOrRef, force)
}

// LayerDirs returns the unpacked layer directories of image id, top-most
// first, ready to be an overlayfs lowerdir list.
func (s *Store) LayerDirs(ctx context.Context, id digest.Digest) ([]string, error) {
	return s.layerDirs(ctx, id)
}

// Load imports a `docker save` or OCI-archive tarball (optionally gzip or
// zstd compressed) and returns the images it held, tagged as in the archive.
func (s *Store) Load(ctx context.Context, r io.Reader, progress ProgressFunc) ([]*Image, error) {
	return s.load(ctx, r, progress)
}

// Save writes the named images as a `docker save` tarball (which also carries
// an OCI index.json and oci-layout, as Docker 25+ writes them).
func (s *Store) Save(ctx context.Context, w io.Writer, names []string) error {
	return s.save(ctx, w, names)
}
