package image

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// Directory names under Root.
const (
	dirBlobs  = "blobs"
	dirLayers = "layers"
	dirImages = "images"
	dirTmp    = "tmp"
	fileRefs  = "refs.json"
	fileLock  = "lock"
	layerFS   = "fs"        // unpacked tree inside layers/<chainID>/
	layerMeta = "meta.json" // written last: a layer dir without it is garbage
)

func (s *Store) tmpDir() string { return filepath.Join(s.root, dirTmp) }

func (s *Store) blobPath(d digest.Digest) string {
	return filepath.Join(s.root, dirBlobs, d.Algorithm().String(), d.Encoded())
}

func (s *Store) hasBlob(d digest.Digest) bool {
	fi, err := os.Lstat(s.blobPath(d))
	return err == nil && fi.Mode().IsRegular()
}

// checkDigest accepts only well-formed sha256 digests, the one algorithm the
// store keeps (it also makes d safe to use as a file name).
func checkDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("digest %q: %v: %w", d, err, ErrInvalid)
	}
	if d.Algorithm() != digest.SHA256 {
		return fmt.Errorf("digest %q: unsupported algorithm: %w", d, ErrInvalid)
	}
	return nil
}

// blobWriter streams content into Root/tmp while hashing it; commit moves it
// into the content-addressed store once digest and size are verified.
type blobWriter struct {
	s *Store
	f *os.File
	h hash.Hash
	n int64
}

func (s *Store) newBlobWriter() (*blobWriter, error) {
	f, err := os.CreateTemp(s.tmpDir(), "blob-")
	if err != nil {
		return nil, fmt.Errorf("create temporary blob: %w", err)
	}
	return &blobWriter{s: s, f: f, h: digest.SHA256.Hash()}, nil
}

func (w *blobWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

func (w *blobWriter) digest() digest.Digest { return digest.NewDigest(digest.SHA256, w.h) }

// abort discards the temporary file.
func (w *blobWriter) abort() {
	if w.f != nil {
		w.f.Close()
		os.Remove(w.f.Name())
		w.f = nil
	}
}

// commit verifies the content against want (when not empty) and size (when
// not negative), fsyncs it and renames it into place. created is false when
// the blob was already stored.
func (w *blobWriter) commit(want digest.Digest, size int64) (got digest.Digest, created bool, err error) {
	defer w.abort()
	got = w.digest()
	if size >= 0 && w.n != size {
		return got, false, fmt.Errorf("blob %s: size %d, expected %d: %w", want, w.n, size, ErrCorrupt)
	}
	if want != "" && got != want {
		return got, false, fmt.Errorf("blob %s: content has digest %s: %w", want, got, ErrCorrupt)
	}
	if err := w.f.Sync(); err != nil {
		return got, false, fmt.Errorf("blob %s: sync: %w", got, err)
	}
	if err := w.f.Close(); err != nil {
		return got, false, fmt.Errorf("blob %s: close: %w", got, err)
	}
	tmp := w.f.Name()
	w.f = nil
	created, err = w.s.commitFile(tmp, got)
	if err != nil {
		os.Remove(tmp)
	}
	return got, created, err
}

// commitFile renames a verified, synced file from Root/tmp to the blob path of
// d, or removes it when the blob is already there.
func (s *Store) commitFile(tmp string, d digest.Digest) (bool, error) {
	dst := s.blobPath(d)
	if s.hasBlob(d) {
		os.Remove(tmp)
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return false, fmt.Errorf("blob %s: %w", d, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return false, fmt.Errorf("blob %s: %w", d, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return true, fmt.Errorf("blob %s: sync dir: %w", d, err)
	}
	return true, nil
}

// writeBlob stores small in-memory content (configs, manifests).
func (s *Store) writeBlob(data []byte, want digest.Digest) (digest.Digest, bool, error) {
	w, err := s.newBlobWriter()
	if err != nil {
		return "", false, err
	}
	if _, err := w.Write(data); err != nil {
		w.abort()
		return "", false, fmt.Errorf("write blob %s: %w", want, err)
	}
	return w.commit(want, int64(len(data)))
}

// readBlob reads a small stored blob, at most limit bytes.
func (s *Store) readBlob(d digest.Digest, limit int64) ([]byte, error) {
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("blob %s: %w", d, ErrNotFound)
		}
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("blob %s: larger than %d bytes: %w", d, limit, ErrInvalid)
	}
	if digest.FromBytes(b) != d {
		return nil, fmt.Errorf("blob %s: %w", d, ErrCorrupt)
	}
	return b, nil
}

// writeFileAtomic replaces path with data: temporary file in Root/tmp, fsync,
// rename, fsync of the directory. Readers see the old or the new content.
func (s *Store) writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(s.tmpDir(), "meta-")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("write %s: sync dir: %w", path, err)
	}
	return nil
}

// keyedMutex serialises work per key (a blob digest, a layer chain ID) so
// that one blob is downloaded and one layer unpacked at a time.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func (k *keyedMutex) lock(ctx context.Context, key string) (func(), error) {
	for {
		k.mu.Lock()
		if k.m == nil {
			k.m = make(map[string]chan struct{})
		}
		ch, busy := k.m[key]
		if !busy {
			ch = make(chan struct{})
			k.m[key] = ch
			k.mu.Unlock()
			return func() {
				k.mu.Lock()
				delete(k.m, key)
				k.mu.Unlock()
				close(ch)
			}, nil
		}
		k.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// progressReader counts bytes read and reports them at most ten times a
// second (and once at EOF).
type progressReader struct {
	r      io.Reader
	n      int64
	last   time.Time
	report func(n int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.report != nil {
		if now := time.Now(); err != nil || now.Sub(p.last) >= 100*time.Millisecond {
			p.last = now
			p.report(p.n)
		}
	}
	return n, err
}

// syncProgress serialises calls to fn, so a callback need not be safe for
// concurrent use; nil becomes a no-op.
func syncProgress(fn ProgressFunc) ProgressFunc {
	if fn == nil {
		return func(Progress) {}
	}
	var mu sync.Mutex
	return func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		fn(p)
	}
}
