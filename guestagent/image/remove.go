package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	digest "github.com/opencontainers/go-digest"
)

func (s *Store) remove(ctx context.Context, nameOrRef string, force bool) (*RemoveResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// InUse belongs to the caller (the engine may hold its own lock while
	// calling into the store), so it is asked without the store's lock;
	// should the name move to another image meanwhile, ask again.
	for {
		s.mu.Lock()
		err := s.checkOpenLocked()
		var r resolved
		if err == nil {
			r, err = s.resolveLocked(nameOrRef)
		}
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		id := r.rec.ID
		inUse := s.inUse != nil && s.inUse(id)
		s.mu.Lock()
		res, d, err := s.removeLocked(nameOrRef, id, inUse, force)
		s.mu.Unlock()
		if err == errMoved {
			continue
		}
		s.removeDoomed(d)
		return res, err
	}
}

// errMoved tells remove that the name resolved to another image than the
// one InUse was asked about.
var errMoved = errors.New("image: name moved")

func (s *Store) removeLocked(nameOrRef string, id digest.Digest, inUse, force bool) (*RemoveResult, doomed, error) {
	if err := s.checkOpenLocked(); err != nil {
		return nil, doomed{}, err
	}
	r, err := s.resolveLocked(nameOrRef)
	if err != nil {
		return nil, doomed{}, err
	}
	if r.rec.ID != id {
		return nil, doomed{}, errMoved
	}
	var keys []string // references of the image
	for k, v := range s.refs {
		if v == id {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	res := &RemoveResult{}
	if !r.byID {
		// Untag; the image goes only when nothing names it any more.
		if !force && inUse && isSingleReference(keys) {
			return nil, doomed{}, fmt.Errorf("conflict: unable to remove repository reference %q (must force) - a container is using its referenced image %s: %w", nameOrRef, shortID(id), ErrInUse)
		}
		drop := []string{r.ref.key}
		repo := repoOfKey(r.ref.key)
		tagsLeft := false
		for _, k := range keys {
			if k != r.ref.key && !isDigestKey(k) && repoOfKey(k) == repo {
				tagsLeft = true
			}
		}
		if !tagsLeft && !isDigestKey(r.ref.key) {
			// Digest references alone do not keep an image in a
			// repository whose last tag went, as in Docker.
			for _, k := range keys {
				if isDigestKey(k) && repoOfKey(k) == repo {
					drop = append(drop, k)
				}
			}
		}
		if err := s.dropRefsLocked(drop, res); err != nil {
			return nil, doomed{}, err
		}
		// Still named, or (forced) in use: the image stays, perhaps dangling.
		if len(keys) > len(drop) || inUse {
			return res, doomed{}, nil
		}
	} else {
		if len(keys) > 0 && !isSingleReference(keys) && !force {
			return nil, doomed{}, fmt.Errorf("conflict: unable to delete %s (must be forced) - image is referenced in multiple repositories: %w", shortID(id), ErrConflict)
		}
		if inUse && !force {
			return nil, doomed{}, fmt.Errorf("conflict: unable to delete %s (must be forced) - image is being used by a container: %w", shortID(id), ErrInUse)
		}
		if err := s.dropRefsLocked(keys, res); err != nil {
			return nil, doomed{}, err
		}
	}
	// Delete the image, then whatever content only it used.
	if err := os.Remove(filepath.Join(s.root, dirImages, id.Encoded()+".json")); err != nil && !os.IsNotExist(err) {
		return res, doomed{}, fmt.Errorf("delete image %s: %w", id, err)
	}
	if err := syncDir(filepath.Join(s.root, dirImages)); err != nil {
		return res, doomed{}, fmt.Errorf("delete image %s: %w", id, err)
	}
	rec := r.rec
	delete(s.images, id)
	res.Deleted = append(res.Deleted, id)
	chains := make([]digest.Digest, 0, len(rec.Layers))
	for i := len(rec.Layers) - 1; i >= 0; i-- {
		chains = append(chains, rec.Layers[i].ChainID)
	}
	d, deleted := s.collectLocked(rec.blobs(), chains)
	res.Deleted = append(res.Deleted, deleted...)
	return res, d, nil
}

// dropRefsLocked deletes references and persists the table.
func (s *Store) dropRefsLocked(keys []string, res *RemoveResult) error {
	if len(keys) == 0 {
		return nil
	}
	old := make(map[string]digest.Digest, len(keys))
	for _, k := range keys {
		old[k] = s.refs[k]
		delete(s.refs, k)
	}
	if err := s.saveRefsLocked(); err != nil {
		for k, v := range old {
			s.refs[k] = v
		}
		return err
	}
	for _, k := range keys {
		res.Untagged = append(res.Untagged, familiarName(k))
	}
	return nil
}

// isSingleReference reports, as Docker decides it, whether an image's
// references amount to one name: at most one tag, and digest references only
// in that tag's repository (or, without a tag, in one repository).
func isSingleReference(keys []string) bool {
	if len(keys) <= 1 {
		return len(keys) == 1
	}
	tag := ""
	digestRepos := make(map[string]bool)
	for _, k := range keys {
		switch {
		case isDigestKey(k):
			digestRepos[repoOfKey(k)] = true
		case tag != "":
			return false
		default:
			tag = k
		}
	}
	if tag == "" {
		return len(digestRepos) == 1
	}
	return len(digestRepos) == 1 && digestRepos[repoOfKey(tag)]
}
