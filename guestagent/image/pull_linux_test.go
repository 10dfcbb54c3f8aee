package image

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// baseLayer and topLayer make a small two-layer image with a symlink and a
// whiteout.
func baseLayer(t *testing.T) v1.Layer {
	return layer(t, dir("bin/"), file("bin/sh", "#!shell"), file("etc/gone", "x"), dir("etc/"), file("etc/os-release", "ID=berth\n"))
}

func topLayer(t *testing.T) v1.Layer {
	return layer(t, dir("etc/"), file("etc/.wh.gone", ""), symlink("bin/busybox", "sh"), file("app/data", "hello"))
}

func TestPullByTagAndDigest(t *testing.T) {
	reg := newRegistry(t, nil)
	img := image(t, testPlatform, "a", baseLayer(t), topLayer(t))
	reg.push(t, "test/a:1", img)
	s := openStore(t)
	ctx := ctxT(t)

	rec := &recorder{}
	got, err := s.Pull(ctx, reg.ref("test/a:1"), PullOptions{Auth: authn.Anonymous, Progress: rec.fn})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID.String() != imageID(t, img) {
		t.Errorf("ID = %s, want %s", got.ID, imageID(t, img))
	}
	md := manifestDigest(t, img)
	if want := []string{reg.ref("test/a:1")}; !slices.Equal(got.RepoTags, want) {
		t.Errorf("RepoTags = %v, want %v", got.RepoTags, want)
	}
	if want := []string{reg.ref("test/a@" + md)}; !slices.Equal(got.RepoDigests, want) {
		t.Errorf("RepoDigests = %v, want %v", got.RepoDigests, want)
	}
	if len(got.Layers) != 2 || got.Config.OS != "linux" || !slices.Contains(got.Config.Config.Env, "TEST=a") {
		t.Errorf("image = %+v", got)
	}
	if got.Size != int64(len("#!shell")+len("x")+len("ID=berth\n")+len("hello")) {
		t.Errorf("Size = %d", got.Size)
	}
	l0, _ := baseLayer(t).Digest()
	id0 := l0.Hex[:12]
	wantSeq := []string{"Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete", "Extracting", "Pull complete"}
	seq := rec.statuses(id0)
	if i := slices.Index(seq, "Waiting"); i >= 0 {
		seq = slices.Delete(seq, i, i+1)
	}
	if !slices.Equal(seq, wantSeq) {
		t.Errorf("progress of layer %s = %q, want %q", id0, seq, wantSeq)
	}
	if !rec.has("Pulling from test/a") || !rec.has("Digest: "+md) || !rec.has("Status: Downloaded newer image for "+reg.ref("test/a:1")) {
		t.Errorf("progress = %q", rec.statuses(""))
	}

	dirs, err := s.LayerDirs(ctx, got.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != 2 {
		t.Fatalf("LayerDirs = %v", dirs)
	}
	if b := readFile(t, filepath.Join(dirs[1], "etc/os-release")); b != "ID=berth\n" {
		t.Errorf("base layer os-release = %q", b)
	}
	if b := readFile(t, filepath.Join(dirs[0], "app/data")); b != "hello" {
		t.Errorf("top layer app/data = %q", b)
	}
	if l, err := os.Readlink(filepath.Join(dirs[0], "bin/busybox")); err != nil || l != "sh" {
		t.Errorf("symlink = %q, %v", l, err)
	}
	if _, err := os.Lstat(filepath.Join(dirs[0], "etc/.wh.gone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("whiteout entry materialized as a file: %v", err)
	}

	// By digest: the same image, already complete.
	rec = &recorder{}
	byDigest, err := s.Pull(ctx, reg.ref("test/a@"+md), PullOptions{Auth: authn.Anonymous, Progress: rec.fn})
	if err != nil {
		t.Fatal(err)
	}
	if byDigest.ID != got.ID {
		t.Errorf("pull by digest: ID %s, want %s", byDigest.ID, got.ID)
	}
	if st := rec.statuses(id0); !slices.Equal(st, []string{"Already exists"}) {
		t.Errorf("re-pull progress = %q", st)
	}
	if !rec.has("Status: Image is up to date for " + reg.ref("test/a@"+md)) {
		t.Errorf("progress = %q", rec.statuses(""))
	}
	// Again by tag.
	rec = &recorder{}
	if _, err := s.Pull(ctx, reg.ref("test/a:1"), PullOptions{Auth: authn.Anonymous, Progress: rec.fn}); err != nil {
		t.Fatal(err)
	}
	if !rec.has("Status: Image is up to date for "+reg.ref("test/a:1")) || !rec.has("Already exists") || rec.has("Downloading") {
		t.Errorf("progress = %q", rec.statuses(""))
	}
	// A digest not in the registry.
	_, err = s.Pull(ctx, reg.ref("test/a@"+digest.FromString("nope").String()), anon())
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("pull of unknown digest: %v, want ErrNotFound", err)
	}
	list, _ := s.List(ctx)
	if len(list) != 1 {
		t.Errorf("List = %d images", len(list))
	}
}

func TestPullPlatform(t *testing.T) {
	reg := newRegistry(t, nil)
	amd := image(t, ocispec.Platform{OS: "linux", Architecture: "amd64"}, "amd64", baseLayer(t))
	arm := image(t, ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, "arm64", baseLayer(t), topLayer(t))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	reg.pushIndex(t, "multi:latest", idx)
	ctx := ctxT(t)
	idxDigest := manifestDigest(t, idx)

	for _, tc := range []struct {
		plat ocispec.Platform
		want v1.Image
	}{
		{ocispec.Platform{OS: "linux", Architecture: "amd64"}, amd},
		{ocispec.Platform{OS: "linux", Architecture: "arm64"}, arm},
		{ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, arm},
	} {
		s := openStore(t, func(o *Options) { o.Platform = tc.plat })
		rec := &recorder{}
		got, err := s.Pull(ctx, reg.ref("multi"), PullOptions{Auth: authn.Anonymous, Progress: rec.fn})
		if err != nil {
			t.Fatalf("%s: %v", platformString(tc.plat), err)
		}
		if got.ID.String() != imageID(t, tc.want) {
			t.Errorf("%s: got image %s (%s), want %s", platformString(tc.plat), got.ID, got.Config.Architecture, imageID(t, tc.want))
		}
		// Docker records the digest of the list.
		if want := []string{reg.ref("multi@" + idxDigest)}; !slices.Equal(got.RepoDigests, want) {
			t.Errorf("RepoDigests = %v, want %v", got.RepoDigests, want)
		}
		if !rec.has("Digest: " + idxDigest) {
			t.Errorf("progress = %q", rec.statuses(""))
		}
	}
	s := openStore(t, func(o *Options) { o.Platform = ocispec.Platform{OS: "linux", Architecture: "s390x"} })
	before := snapshot(t, s)
	_, err := s.Pull(ctx, reg.ref("multi:latest"), anon())
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no matching manifest for linux/s390x in the manifest list entries") {
		t.Errorf("pull for s390x: %v", err)
	}
	if after := snapshot(t, s); !slices.Equal(before, after) {
		t.Errorf("store changed: %v → %v", before, after)
	}
}

func TestPullSharedLayersAndConcurrency(t *testing.T) {
	reg := newRegistry(t, nil)
	base := baseLayer(t)
	a := image(t, testPlatform, "a", base, layer(t, file("a", "a")))
	b := image(t, testPlatform, "b", base, layer(t, file("b", "bb")))
	reg.push(t, "a:1", a)
	reg.push(t, "b:1", b)
	s := openStore(t)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i, r := range []string{"a:1", "b:1", "a:1", "b:1"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Pull(ctx, reg.ref(r), anon())
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(s.root, dirLayers))
	if len(ents) != 3 {
		t.Errorf("%d layer dirs, want 3 (shared base)", len(ents))
	}
	ia, _ := s.Get(ctx, reg.ref("a:1"))
	ib, _ := s.Get(ctx, reg.ref("b:1"))
	da, _ := s.LayerDirs(ctx, ia.ID)
	db, _ := s.LayerDirs(ctx, ib.ID)
	if len(da) != 2 || len(db) != 2 || da[1] != db[1] || da[0] == db[0] {
		t.Errorf("layer dirs a=%v b=%v", da, db)
	}
}

// corruptBlob serves wrong bytes (same length) for one blob.
func corruptBlob(d v1.Hash) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+d.String()) {
				next.ServeHTTP(w, r)
				return
			}
			rec := &bufferedResponse{header: http.Header{}}
			next.ServeHTTP(rec, r)
			body := rec.body.Bytes()
			if len(body) > 20 {
				body[len(body)/2] ^= 0xff
			}
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.code)
			w.Write(body)
		})
	}
}

type bufferedResponse struct {
	header http.Header
	body   bytes.Buffer
	code   int
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}
func (b *bufferedResponse) WriteHeader(code int) { b.code = code }

func TestPullCorruptBlob(t *testing.T) {
	good := image(t, testPlatform, "good", layer(t, file("g", "g")))
	bad := image(t, testPlatform, "bad", baseLayer(t), layer(t, file("big", strings.Repeat("payload ", 1000))))
	ls, _ := bad.Layers()
	victim, _ := ls[1].Digest()
	reg := newRegistry(t, corruptBlob(victim))
	reg.push(t, "good:1", good)
	reg.push(t, "bad:1", bad)
	s := openStore(t)
	ctx := ctxT(t)
	if _, err := s.Pull(ctx, reg.ref("good:1"), anon()); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, s)
	_, err := s.Pull(ctx, reg.ref("bad:1"), anon())
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("pull of corrupt blob: %v, want ErrCorrupt", err)
	}
	t.Logf("pull: %v", err)
	if after := snapshot(t, s); !slices.Equal(before, after) {
		t.Errorf("store changed:\n%v\n→\n%v", before, after)
	}
	if list, _ := s.List(ctx); len(list) != 1 {
		t.Errorf("List = %d images", len(list))
	}
}

func TestPullDiffIDMismatch(t *testing.T) {
	img := image(t, testPlatform, "x", layer(t, file("f", "content")))
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs[0] = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	img, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	reg := newRegistry(t, nil)
	reg.push(t, "lie:1", img)
	s := openStore(t)
	before := snapshot(t, s)
	_, err = s.Pull(ctxT(t), reg.ref("lie:1"), anon())
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("pull: %v, want ErrCorrupt", err)
	}
	t.Logf("pull: %v", err)
	if after := snapshot(t, s); !slices.Equal(before, after) {
		t.Errorf("store changed:\n%v\n→\n%v", before, after)
	}
}

func TestPullErrors(t *testing.T) {
	reg := newRegistry(t, nil)
	s := openStore(t)
	ctx := ctxT(t)
	for _, ref := range []string{"UPPER/case", "a b", "", "x:", "http://127.0.0.1/x", strings.Repeat("a", 64)} {
		if _, err := s.Pull(ctx, ref, anon()); !errors.Is(err, ErrInvalid) {
			t.Errorf("Pull(%q) = %v, want ErrInvalid", ref, err)
		}
	}
	reg.push(t, "win:1", image(t, ocispec.Platform{OS: "windows", Architecture: "amd64"}, "w", layer(t, file("w", "w"))))
	if _, err := s.Pull(ctx, reg.ref("win:1"), anon()); !errors.Is(err, ErrInvalid) {
		t.Errorf("pull of a windows image: %v, want ErrInvalid", err)
	}
	if _, err := s.Pull(ctx, reg.ref("missing:1"), anon()); !errors.Is(err, ErrNotFound) {
		t.Errorf("pull of unknown image: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of unknown image: %v, want ErrNotFound", err)
	}
}

// basicAuth lets only user:pass in, answering others as a registry does.
func basicAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "pass" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestPullBasicAuth(t *testing.T) {
	reg := newRegistry(t, basicAuth)
	auth := &authn.Basic{Username: "user", Password: "pass"}
	img := image(t, testPlatform, "private", layer(t, file("secret", "s")))
	reg.push(t, "private:1", img, remote.WithAuth(auth))
	s := openStore(t)
	ctx := ctxT(t)
	_, err := s.Pull(ctx, reg.ref("private:1"), anon())
	if !errors.Is(err, ErrUnauthorized) || !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "pull access denied") {
		t.Errorf("anonymous pull: %v", err)
	}
	t.Logf("anonymous pull: %v", err)
	_, err = s.Pull(ctx, reg.ref("private:1"), PullOptions{Auth: &authn.Basic{Username: "user", Password: "wrong"}})
	if !errors.Is(err, ErrUnauthorized) {
		t.Errorf("pull with a wrong password: %v", err)
	}
	got, err := s.Pull(ctx, reg.ref("private:1"), PullOptions{Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID.String() != imageID(t, img) {
		t.Errorf("ID = %s", got.ID)
	}
}

// stallBlob serves half of one blob, then blocks until the request ends.
func stallBlob(d v1.Hash, started chan<- struct{}) func(http.Handler) http.Handler {
	var once sync.Once
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+d.String()) {
				next.ServeHTTP(w, r)
				return
			}
			rec := &bufferedResponse{header: http.Header{}}
			next.ServeHTTP(rec, r)
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.code)
			w.Write(rec.body.Bytes()[:rec.body.Len()/2])
			w.(http.Flusher).Flush()
			once.Do(func() { close(started) })
			<-r.Context().Done()
		})
	}
}

func TestPullCancel(t *testing.T) {
	img := image(t, testPlatform, "slow", baseLayer(t), layer(t, file("big", strings.Repeat("z", 1<<20))))
	ls, _ := img.Layers()
	victim, _ := ls[1].Digest()
	started := make(chan struct{})
	reg := newRegistry(t, stallBlob(victim, started))
	reg.push(t, "slow:1", img)
	s := openStore(t)
	before := snapshot(t, s)
	ctx, cancel := context.WithCancel(ctxT(t))
	go func() {
		<-started
		cancel()
	}()
	_, err := s.Pull(ctx, reg.ref("slow:1"), anon())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("pull: %v, want context.Canceled", err)
	}
	if after := snapshot(t, s); !slices.Equal(before, after) {
		t.Errorf("store changed:\n%v\n→\n%v", before, after)
	}
}

func TestPullSchema1Refused(t *testing.T) {
	reg := newRegistry(t, nil)
	body := `{"schemaVersion":1,"name":"old","tag":"1","architecture":"amd64","fsLayers":[],"history":[]}`
	req, _ := http.NewRequest(http.MethodPut, reg.srv.URL+"/v2/old/manifests/1", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/vnd.docker.distribution.manifest.v1+prettyjws")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT schema1 manifest: %s", resp.Status)
	}
	s := openStore(t)
	_, err = s.Pull(ctxT(t), reg.ref("old:1"), anon())
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "schema 1") {
		t.Errorf("pull of schema1 image: %v", err)
	}
}

// tokenAuth is a registry behind bearer-token auth: /token trades user:pass
// for a token, the registry wants the token.
func tokenAuth(next http.Handler) http.Handler {
	const token = "t0ken"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "pass" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"token":"`+token+`"}`)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+r.Host+`/token",service="test"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestPullTokenAuth(t *testing.T) {
	reg := newRegistry(t, tokenAuth)
	auth := &authn.Basic{Username: "user", Password: "pass"}
	img := image(t, testPlatform, "tok", layer(t, file("t", "t")))
	reg.push(t, "tok:1", img, remote.WithAuth(auth))
	s := openStore(t)
	ctx := ctxT(t)
	if _, err := s.Pull(ctx, reg.ref("tok:1"), anon()); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("anonymous pull: %v, want ErrUnauthorized", err)
	}
	got, err := s.Pull(ctx, reg.ref("tok:1"), PullOptions{Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID.String() != imageID(t, img) {
		t.Errorf("ID = %s", got.ID)
	}
}

// TestPullRemoveRace pulls and removes the same images concurrently; whatever
// the interleaving, every image left must be complete.
func TestPullRemoveRace(t *testing.T) {
	reg := newRegistry(t, nil)
	base := baseLayer(t)
	reg.push(t, "a:1", image(t, testPlatform, "a", base, layer(t, file("a", "a"))))
	reg.push(t, "b:1", image(t, testPlatform, "b", base, layer(t, file("b", "b"))))
	s := openStore(t)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(2)
		r := reg.ref([]string{"a:1", "b:1"}[i%2])
		go func() {
			defer wg.Done()
			if _, err := s.Pull(ctx, r, anon()); err != nil {
				t.Errorf("pull %s: %v", r, err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := s.Remove(ctx, r, false); err != nil && !errors.Is(err, ErrNotFound) {
				t.Errorf("remove %s: %v", r, err)
			}
		}()
	}
	wg.Wait()
	check := func(s *Store) {
		list, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, img := range list {
			dirs, err := s.LayerDirs(ctx, img.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range dirs {
				if _, err := os.Stat(filepath.Join(filepath.Dir(d), layerMeta)); err != nil {
					t.Errorf("image %s: layer %s incomplete: %v", img.ID, d, err)
				}
			}
			s.mu.Lock()
			for _, b := range s.images[img.ID].blobs() {
				if !s.hasBlob(b) {
					t.Errorf("image %s: blob %s missing", img.ID, b)
				}
			}
			s.mu.Unlock()
		}
	}
	check(s)
	// Recovery finds nothing to drop either.
	n, _ := s.List(ctx)
	s.Close()
	s2 := openStore(t, func(o *Options) { o.Root = s.root })
	check(s2)
	if m, _ := s2.List(ctx); len(m) != len(n) {
		t.Errorf("recovery dropped images: %d → %d", len(n), len(m))
	}
}

func TestPullRepeatedLayer(t *testing.T) {
	reg := newRegistry(t, nil)
	same := layer(t, file("same", "s"))
	img := image(t, testPlatform, "rep", same, layer(t, file("mid", "m")), same)
	reg.push(t, "rep:1", img)
	s := openStore(t)
	ctx := ctxT(t)
	got, err := s.Pull(ctx, reg.ref("rep:1"), anon())
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := s.LayerDirs(ctx, got.ID)
	if err != nil || len(dirs) != 3 || dirs[0] == dirs[2] {
		t.Fatalf("LayerDirs = %v, %v", dirs, err)
	}
	if readFile(t, filepath.Join(dirs[0], "same")) != "s" {
		t.Error("top layer content")
	}
	if res, err := s.Remove(ctx, got.ID.String(), false); err != nil || len(res.Deleted) != 4 {
		t.Errorf("Remove = %+v, %v", res, err)
	}
}
