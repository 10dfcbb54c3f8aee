package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// maxParallelDownloads matches dockerd's default max-concurrent-downloads.
const maxParallelDownloads = 3

// registryError maps a go-containerregistry error to the store's sentinels,
// with dockerd's wording.
func registryError(ref imageRef, what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("pull %s: %s: %w", ref.familiar(), what, err)
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		switch {
		case terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden ||
			hasCode(terr, transport.UnauthorizedErrorCode, transport.DeniedErrorCode):
			// dockerd answers this one with 404 too.
			return &pullError{
				msg:   fmt.Sprintf("pull access denied for %s, repository does not exist or may require 'docker login'", familiarName(ref.repoKey)),
				kinds: []error{ErrUnauthorized, ErrNotFound},
				err:   err,
			}
		case terr.StatusCode == http.StatusNotFound ||
			hasCode(terr, transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode):
			return &pullError{msg: fmt.Sprintf("pull %s: %s: not found", ref.familiar(), what), kinds: []error{ErrNotFound}, err: err}
		}
	}
	return fmt.Errorf("pull %s: %s: %w", ref.familiar(), what, err)
}

// pullError is a registry failure with a Docker-style message that matches
// one or more of the store's sentinels.
type pullError struct {
	msg   string
	kinds []error
	err   error
}

func (e *pullError) Error() string   { return e.msg + ": " + e.err.Error() }
func (e *pullError) Unwrap() []error { return append(append([]error(nil), e.kinds...), e.err) }

func hasCode(terr *transport.Error, codes ...transport.ErrorCode) bool {
	for _, d := range terr.Errors {
		for _, c := range codes {
			if d.Code == c {
				return true
			}
		}
	}
	return false
}

// puller is the state of one Pull.
type puller struct {
	s        *Store
	ref      imageRef
	remote   *remote.Puller
	progress ProgressFunc
	op       *op
}

func (s *Store) pull(ctx context.Context, refStr string, opts PullOptions) (img *Image, err error) {
	ref, err := parseRef(refStr)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	err = s.checkOpenLocked()
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithUserAgent("berth")}
	if opts.Auth != nil {
		ropts = append(ropts, remote.WithAuth(opts.Auth))
	} else {
		ropts = append(ropts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	}
	rp, err := remote.NewPuller(ropts...)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", refStr, err)
	}
	p := &puller{s: s, ref: ref, remote: rp, progress: syncProgress(opts.Progress), op: s.newOp()}
	defer p.op.end()

	if ref.tag != "" {
		p.progress(Progress{ID: ref.tag, Status: "Pulling from " + ref.path})
	} else {
		p.progress(Progress{ID: ref.digest.String(), Status: "Pulling from " + ref.path})
	}
	top, err := rp.Get(ctx, ref.ref)
	if err != nil {
		return nil, registryError(ref, "get manifest", err)
	}
	manifest, mt := top.Manifest, string(top.MediaType)
	if !isIndexType(mt) && !isManifestType(mt) && !isSchema1Type(mt) {
		mt = sniffMediaType(manifest)
	}
	if isIndexType(mt) {
		var idx ocispec.Index
		if err := json.Unmarshal(manifest, &idx); err != nil {
			return nil, fmt.Errorf("pull %s: manifest list: %v: %w", refStr, err, ErrInvalid)
		}
		d, err := choosePlatform(idx, s.platform)
		if err != nil {
			return nil, fmt.Errorf("pull %s: %w", refStr, err)
		}
		if err := checkDigest(d.Digest); err != nil {
			return nil, fmt.Errorf("pull %s: manifest list entry: %w", refStr, err)
		}
		desc, err := rp.Get(ctx, ref.ref.Context().Digest(d.Digest.String()))
		if err != nil {
			return nil, registryError(ref, "get manifest "+d.Digest.String(), err)
		}
		if got := digest.FromBytes(desc.Manifest); got != d.Digest {
			return nil, fmt.Errorf("pull %s: manifest %s has digest %s: %w", refStr, d.Digest, got, ErrCorrupt)
		}
		manifest, mt = desc.Manifest, string(desc.MediaType)
		if !isManifestType(mt) && !isSchema1Type(mt) {
			mt = sniffMediaType(manifest)
		}
	}
	switch {
	case isSchema1Type(mt):
		return nil, fmt.Errorf("pull %s: Docker image manifest schema 1 is not supported; push the image again with a current client: %w", refStr, ErrInvalid)
	case !isManifestType(mt):
		return nil, fmt.Errorf("pull %s: unsupported manifest media type %q: %w", refStr, mt, ErrInvalid)
	}
	topDigest := digest.Digest(top.Digest.String())
	if ref.digest != "" && topDigest != ref.digest {
		return nil, fmt.Errorf("pull %s: registry served manifest %s: %w", refStr, topDigest, ErrCorrupt)
	}
	m, err := parseManifest(manifest)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", refStr, err)
	}
	config, err := p.fetchSmall(ctx, m.Config)
	if err != nil {
		return nil, err
	}
	cfg, err := parseConfig(config, len(m.Layers))
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", refStr, err)
	}
	if cfg.OS != "" && cfg.OS != s.platform.OS {
		return nil, fmt.Errorf("pull %s: image operating system %q cannot be used on this platform (%s): %w", refStr, cfg.OS, s.platform.OS, ErrInvalid)
	}
	if cfg.Architecture != "" && cfg.Architecture != s.platform.Architecture {
		s.log.Warn("image platform does not match the store's", "ref", refStr,
			"image", cfg.OS+"/"+cfg.Architecture, "want", platformString(s.platform))
	}
	layers, err := p.fetchLayers(ctx, m.Layers, cfg.RootFS.DiffIDs)
	if err != nil {
		return nil, err
	}
	refs := []string{ref.key}
	if ref.tag != "" {
		refs = append(refs, ref.repoKey+"@"+topDigest.String())
	}
	img, upToDate, err := s.commitImage(p.op, &newImage{
		manifest: manifest, manifestMediaType: mt, config: config, parsed: cfg, layers: layers, refs: refs,
	})
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", refStr, err)
	}
	// Final lines carry no ID, as in dockerd's stream.
	p.progress(Progress{Status: "Digest: " + topDigest.String()})
	if upToDate {
		p.progress(Progress{Status: "Status: Image is up to date for " + ref.familiar()})
	} else {
		p.progress(Progress{Status: "Status: Downloaded newer image for " + ref.familiar()})
	}
	return img, nil
}

// fetchSmall downloads a config blob into memory, verifying it.
func (p *puller) fetchSmall(ctx context.Context, d ocispec.Descriptor) ([]byte, error) {
	if d.Size > maxMetaSize {
		return nil, fmt.Errorf("pull %s: config %s is %d bytes: %w", p.ref.familiar(), d.Digest, d.Size, ErrInvalid)
	}
	l, err := p.remote.Layer(ctx, p.ref.ref.Context().Digest(d.Digest.String()))
	if err != nil {
		return nil, registryError(p.ref, "config "+d.Digest.String(), err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, registryError(p.ref, "config "+d.Digest.String(), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxMetaSize+1))
	if err != nil {
		if ctx.Err() == nil && int64(len(b)) >= d.Size && digest.FromBytes(b) != d.Digest {
			return nil, fmt.Errorf("pull %s: config %s: content has digest %s: %w", p.ref.familiar(), d.Digest, digest.FromBytes(b), ErrCorrupt)
		}
		return nil, registryError(p.ref, "config "+d.Digest.String(), err)
	}
	if int64(len(b)) > maxMetaSize {
		return nil, fmt.Errorf("pull %s: config %s is larger than %d bytes: %w", p.ref.familiar(), d.Digest, maxMetaSize, ErrInvalid)
	}
	if got := digest.FromBytes(b); got != d.Digest || (d.Size > 0 && int64(len(b)) != d.Size) {
		return nil, fmt.Errorf("pull %s: config %s: content has digest %s, %d bytes: %w", p.ref.familiar(), d.Digest, got, len(b), ErrCorrupt)
	}
	return b, nil
}

// fetchLayers downloads (up to three at a time) and unpacks (in order) the
// layers of a manifest, verifying blob digests and diffIDs.
func (p *puller) fetchLayers(ctx context.Context, descs []ocispec.Descriptor, diffIDs []digest.Digest) ([]layerRef, error) {
	s := p.s
	chains := chainIDs(diffIDs)
	out := make([]layerRef, len(descs))
	for i, d := range descs {
		out[i] = layerRef{Blob: d.Digest, MediaType: d.MediaType, BlobSize: d.Size, DiffID: diffIDs[i], ChainID: chains[i]}
		p.op.lease(blobKey(d.Digest), layerKey(chains[i]))
	}
	present := make([]bool, len(descs))
	for i, l := range out {
		if s.hasBlob(l.Blob) {
			if li, err := s.readLayerInfo(l.ChainID); err == nil {
				present[i] = true
				out[i].Size = li.Size
				p.progress(Progress{ID: shortID(l.Blob), Status: "Already exists"})
				continue
			}
		}
		p.progress(Progress{ID: shortID(l.Blob), Status: "Pulling fs layer"})
	}
	g, gctx := errgroup.WithContext(ctx)
	sem := make(chan struct{}, maxParallelDownloads)
	done := make([]chan struct{}, len(descs))
	for i := range descs {
		done[i] = make(chan struct{})
		if present[i] {
			close(done[i])
			continue
		}
		g.Go(func() error {
			select {
			case sem <- struct{}{}:
			default:
				p.progress(Progress{ID: shortID(out[i].Blob), Status: "Waiting"})
				select {
				case sem <- struct{}{}:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			defer func() { <-sem }()
			if err := p.download(gctx, out[i]); err != nil {
				return err
			}
			close(done[i])
			return nil
		})
	}
	g.Go(func() error {
		for i := range out {
			select {
			case <-done[i]:
			case <-gctx.Done():
				return gctx.Err()
			}
			if present[i] {
				continue
			}
			size, err := p.extract(gctx, out[i])
			if err != nil {
				return err
			}
			out[i].Size = size
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("pull %s: %w", p.ref.familiar(), ctx.Err())
		}
		return nil, err
	}
	return out, nil
}

// download streams one layer blob into the blob store; a blob that another
// pull is fetching is waited for rather than fetched twice.
func (p *puller) download(ctx context.Context, l layerRef) error {
	id := shortID(l.Blob)
	unlock, err := p.s.keys.lock(ctx, blobKey(l.Blob))
	if err != nil {
		return err
	}
	defer unlock()
	if p.s.hasBlob(l.Blob) {
		p.progress(Progress{ID: id, Status: "Download complete"})
		return nil
	}
	rl, err := p.remote.Layer(ctx, p.ref.ref.Context().Digest(l.Blob.String()))
	if err != nil {
		return registryError(p.ref, "layer "+l.Blob.String(), err)
	}
	rc, err := rl.Compressed()
	if err != nil {
		return registryError(p.ref, "layer "+l.Blob.String(), err)
	}
	defer rc.Close()
	w, err := p.s.newBlobWriter()
	if err != nil {
		return err
	}
	var src io.Reader = rc
	if l.BlobSize > 0 {
		src = io.LimitReader(rc, l.BlobSize+1)
	}
	pr := &progressReader{r: src, report: func(n int64) {
		p.progress(Progress{ID: id, Status: "Downloading", Current: n, Total: l.BlobSize})
	}}
	_, err = io.Copy(w, pr)
	if err != nil {
		// go-containerregistry verifies too and fails at EOF; report a
		// mismatch in the store's terms.
		if ctx.Err() == nil && (l.BlobSize <= 0 || w.n >= l.BlobSize) && w.digest() != l.Blob {
			w.abort()
			return fmt.Errorf("pull %s: layer %s: content has digest %s: %w", p.ref.familiar(), l.Blob, w.digest(), ErrCorrupt)
		}
		w.abort()
		return registryError(p.ref, "layer "+l.Blob.String(), err)
	}
	p.progress(Progress{ID: id, Status: "Verifying Checksum"})
	size := l.BlobSize
	if size <= 0 {
		size = -1
	}
	_, created, err := w.commit(l.Blob, size)
	if err != nil {
		return fmt.Errorf("pull %s: layer: %w", p.ref.familiar(), err)
	}
	if created {
		p.op.createdBlob(l.Blob)
	}
	p.progress(Progress{ID: id, Status: "Download complete"})
	return nil
}

// extract unpacks one downloaded layer and returns its unpacked size.
func (p *puller) extract(ctx context.Context, l layerRef) (int64, error) {
	id := shortID(l.Blob)
	unlock, err := p.s.keys.lock(ctx, layerKey(l.ChainID))
	if err != nil {
		return 0, err
	}
	defer unlock()
	total := l.BlobSize
	li, created, err := p.s.unpackLayer(ctx, l.Blob, l.DiffID, l.ChainID, func(n int64) {
		p.progress(Progress{ID: id, Status: "Extracting", Current: n, Total: total})
	})
	if err != nil {
		return 0, fmt.Errorf("pull %s: %w", p.ref.familiar(), err)
	}
	if created {
		p.op.createdLayer(l.ChainID)
	}
	p.progress(Progress{ID: id, Status: "Pull complete"})
	return li.Size, nil
}
