package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var testPlatform = ocispec.Platform{OS: "linux", Architecture: "amd64"}

// testRegistry is an in-memory registry on 127.0.0.1; wrap may intercept.
type testRegistry struct {
	host string
	srv  *httptest.Server
}

func newRegistry(t *testing.T, wrap func(http.Handler) http.Handler) *testRegistry {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testRegistry{host: strings.TrimPrefix(srv.URL, "http://"), srv: srv}
}

// ref is a reference to repo:tag (or repo@digest) on this registry.
func (r *testRegistry) ref(s string) string { return r.host + "/" + s }

func (r *testRegistry) push(t *testing.T, ref string, img v1.Image, opts ...remote.Option) {
	t.Helper()
	n, err := name.ParseReference(r.ref(ref))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(n, img, opts...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

func (r *testRegistry) pushIndex(t *testing.T, ref string, idx v1.ImageIndex, opts ...remote.Option) {
	t.Helper()
	n, err := name.ParseReference(r.ref(ref))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(n, idx, opts...); err != nil {
		t.Fatalf("push index %s: %v", ref, err)
	}
}

// tarEntry describes one entry of a test layer.
type tarEntry struct {
	name     string
	typ      byte
	body     string
	linkname string
	uid, gid int
	mode     int64
}

func file(name, body string) tarEntry { return tarEntry{name: name, typ: tar.TypeReg, body: body} }
func dir(name string) tarEntry        { return tarEntry{name: name, typ: tar.TypeDir} }
func symlink(name, target string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeSymlink, linkname: target}
}

func tarBytes(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if e.typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.linkname, Mode: mode,
			Uid: e.uid, Gid: e.gid, Size: int64(len(e.body)), ModTime: time.Unix(1700000000, 0)}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layer makes a gzip-compressed layer from tar entries.
func layer(t *testing.T, entries ...tarEntry) v1.Layer {
	t.Helper()
	b := tarBytes(t, entries...)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// image stacks layers into an image for platform p with a distinguishing env.
func image(t *testing.T, p ocispec.Platform, env string, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Config.Env = []string{"PATH=/bin", "TEST=" + env}
	cf.Config.Cmd = []string{"/bin/sh"}
	cf.Created = v1.Time{Time: time.Unix(1700000000, 0).UTC()}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func imageID(t *testing.T, img v1.Image) string {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func manifestDigest(t *testing.T, img interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// openStore opens an unprivileged store in a fresh directory.
func openStore(t *testing.T, mod ...func(*Options)) *Store {
	t.Helper()
	opts := Options{Root: t.TempDir(), Unprivileged: true, Platform: testPlatform, Logger: testLogger(t)}
	for _, m := range mod {
		m(&opts)
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// recorder collects progress messages.
type recorder struct {
	mu  sync.Mutex
	all []Progress
}

func (r *recorder) fn(p Progress) {
	r.mu.Lock()
	r.all = append(r.all, p)
	r.mu.Unlock()
}

func (r *recorder) statuses(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, p := range r.all {
		if id == "" || p.ID == id {
			if len(out) == 0 || out[len(out)-1] != p.Status {
				out = append(out, p.Status)
			}
		}
	}
	return out
}

func (r *recorder) has(status string) bool {
	return slices.ContainsFunc(r.statuses(""), func(s string) bool { return strings.HasPrefix(s, status) })
}

// snapshot lists every path under the store root but tmp's contents, with
// sizes, to prove an operation left the store unchanged.
func snapshot(t *testing.T, s *Store) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(s.root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.root, p)
		if rel == fileLock {
			return nil
		}
		if fi.Mode().IsRegular() {
			rel = fmt.Sprintf("%s:%d", rel, fi.Size())
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func anon() PullOptions { return PullOptions{Auth: authn.Anonymous} }

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
