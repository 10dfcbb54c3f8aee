package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// saveEntry is one image to write and the references it is saved under.
type saveEntry struct {
	rec  *record
	keys []string
}

func (s *Store) save(ctx context.Context, w io.Writer, names []string) error {
	if len(names) == 0 {
		return fmt.Errorf("save: no images named: %w", ErrInvalid)
	}
	s.mu.Lock()
	if err := s.checkOpenLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	var entries []*saveEntry
	byID := make(map[digest.Digest]*saveEntry)
	var leases []string
	for _, n := range names {
		r, err := s.resolveLocked(n)
		if err != nil {
			s.mu.Unlock()
			return fmt.Errorf("save: %w", err)
		}
		e := byID[r.rec.ID]
		if e == nil {
			e = &saveEntry{rec: r.rec}
			byID[r.rec.ID] = e
			entries = append(entries, e)
			for _, b := range r.rec.blobs() {
				leases = append(leases, blobKey(b))
			}
		}
		// Named by tag: saved under that tag; by ID or digest: untagged, as in Docker.
		if !r.byID && r.ref.tag != "" {
			e.keys = append(e.keys, r.ref.key)
		}
	}
	for _, k := range leases {
		s.leases[k]++
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.releaseLocked(leases...)
		s.mu.Unlock()
	}()
	for _, e := range entries {
		e.keys = dedupe(e.keys)
	}
	if err := s.writeSave(ctx, w, entries); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

// writeSave writes the archive: blobs/sha256/<hex>, index.json, manifest.json,
// oci-layout and repositories, as Docker 25+ does.
func (s *Store) writeSave(ctx context.Context, w io.Writer, entries []*saveEntry) error {
	tw := tar.NewWriter(w)
	epoch := time.Unix(0, 0)
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch})
	}
	file := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	written := make(map[digest.Digest]bool)
	blob := func(d digest.Digest) (int64, error) {
		f, err := os.Open(s.blobPath(d))
		if err != nil {
			return 0, fmt.Errorf("blob %s: %w", d, err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return 0, err
		}
		if written[d] {
			return fi.Size(), nil
		}
		written[d] = true
		if err := tw.WriteHeader(&tar.Header{Name: blobName(d), Typeflag: tar.TypeReg, Mode: 0o644, Size: fi.Size(), ModTime: epoch}); err != nil {
			return 0, err
		}
		if _, err := io.Copy(tw, &ctxReader{ctx: ctx, r: f}); err != nil {
			return 0, fmt.Errorf("blob %s: %w", d, err)
		}
		return fi.Size(), nil
	}
	if err := dir("blobs/"); err != nil {
		return err
	}
	if err := dir("blobs/sha256/"); err != nil {
		return err
	}
	type manifestEntry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var (
		manifests []manifestEntry
		index     = ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
		repos     = make(map[string]map[string]string)
	)
	for _, e := range entries {
		rec := e.rec
		me := manifestEntry{Config: blobName(rec.ID), Layers: []string{}}
		if _, err := blob(rec.ID); err != nil {
			return err
		}
		for _, l := range rec.Layers {
			if _, err := blob(l.Blob); err != nil {
				return err
			}
			me.Layers = append(me.Layers, blobName(l.Blob))
		}
		msize, err := blob(rec.Manifest)
		if err != nil {
			return err
		}
		desc := ocispec.Descriptor{MediaType: rec.ManifestMediaType, Digest: rec.Manifest, Size: msize}
		for _, k := range e.keys {
			fam := familiarName(k)
			me.RepoTags = append(me.RepoTags, fam)
			d := desc
			d.Annotations = map[string]string{
				annotationImageName:       k,
				ocispec.AnnotationRefName: k[strings.LastIndex(k, ":")+1:],
			}
			index.Manifests = append(index.Manifests, d)
			if n := len(rec.Layers); n > 0 {
				repo := familiarName(repoOfKey(k))
				if repos[repo] == nil {
					repos[repo] = make(map[string]string)
				}
				repos[repo][k[strings.LastIndex(k, ":")+1:]] = rec.Layers[n-1].Blob.Encoded()
			}
		}
		if len(e.keys) == 0 {
			index.Manifests = append(index.Manifests, desc)
		}
		manifests = append(manifests, me)
	}
	for _, f := range []struct {
		name string
		v    any
	}{
		{"index.json", index},
		{"manifest.json", manifests},
		{"oci-layout", ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion}},
		{"repositories", repos},
	} {
		b, err := json.Marshal(f.v)
		if err != nil {
			return err
		}
		if err := file(f.name, b); err != nil {
			return err
		}
	}
	return tw.Close()
}

func blobName(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}
