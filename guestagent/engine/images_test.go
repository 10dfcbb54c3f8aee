package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	imagetypes "github.com/moby/moby/api/types/image"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/guestagent/image"
)

// fakeImages is an in-memory ImageService recording what it was asked.
type fakeImages struct {
	mu     sync.Mutex
	images map[digest.Digest]*image.Image
	pulled []string
	saved  []string
	inUse  map[digest.Digest]bool
}

func newFakeImages(imgs ...*image.Image) *fakeImages {
	f := &fakeImages{images: map[digest.Digest]*image.Image{}, inUse: map[digest.Digest]bool{}}
	for _, i := range imgs {
		f.images[i.ID] = i
	}
	return f
}

func fakeImage(seed string, tags ...string) *image.Image {
	cfg := ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}}
	cfg.Config.Cmd = []string{"sh"}
	cfg.Config.Labels = map[string]string{"seed": seed}
	return &image.Image{
		ID:       digest.FromString(seed),
		RepoTags: tags,
		Config:   cfg,
		Created:  time.Unix(1700000000, 0),
		Size:     1234,
		Layers:   []digest.Digest{digest.FromString(seed + "-layer")},
	}
}

func (f *fakeImages) find(name string) (*image.Image, error) {
	for _, i := range f.images {
		if i.ID.String() == name || i.ID.Encoded() == name || slices.Contains(i.RepoTags, name) || slices.Contains(i.RepoTags, name+":latest") {
			return i, nil
		}
	}
	return nil, fmt.Errorf("image %q: %w", name, image.ErrNotFound)
}

func (f *fakeImages) Pull(ctx context.Context, ref string, opts image.PullOptions) (*image.Image, error) {
	f.mu.Lock()
	f.pulled = append(f.pulled, ref)
	f.mu.Unlock()
	if strings.Contains(ref, "missing") {
		return nil, fmt.Errorf("pull %s: manifest unknown: %w", ref, image.ErrNotFound)
	}
	opts.Progress(image.Progress{ID: "abcdef012345", Status: "Pulling fs layer"})
	opts.Progress(image.Progress{ID: "abcdef012345", Status: "Downloading", Current: 10, Total: 20})
	opts.Progress(image.Progress{ID: "abcdef012345", Status: "Pull complete"})
	img := fakeImage(ref, ref)
	f.mu.Lock()
	f.images[img.ID] = img
	f.mu.Unlock()
	return img, nil
}

func (f *fakeImages) Get(ctx context.Context, name string) (*image.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.find(name)
}

func (f *fakeImages) List(ctx context.Context) ([]*image.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*image.Image
	for _, i := range f.images {
		out = append(out, i)
	}
	slices.SortFunc(out, func(a, b *image.Image) int { return strings.Compare(a.ID.String(), b.ID.String()) })
	return out, nil
}

func (f *fakeImages) Tag(ctx context.Context, src, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	img, err := f.find(src)
	if err != nil {
		return err
	}
	img.RepoTags = append(img.RepoTags, ref)
	return nil
}

func (f *fakeImages) Remove(ctx context.Context, name string, force bool) (*image.RemoveResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	img, err := f.find(name)
	if err != nil {
		return nil, err
	}
	if f.inUse[img.ID] && !force {
		return nil, fmt.Errorf("conflict: unable to remove %s: image is being used by a container: %w", name, image.ErrInUse)
	}
	res := &image.RemoveResult{Untagged: img.RepoTags, Deleted: []digest.Digest{img.ID}}
	delete(f.images, img.ID)
	return res, nil
}

func (f *fakeImages) Load(ctx context.Context, r io.Reader, progress image.ProgressFunc) ([]*image.Image, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if string(b) != "TARBALL" {
		return nil, fmt.Errorf("load: not a tarball: %w", image.ErrInvalid)
	}
	if progress != nil {
		progress(image.Progress{ID: "abcdef012345", Status: "Loading layer", Current: 7, Total: 7})
	}
	img := fakeImage("loaded", "loaded:1")
	f.mu.Lock()
	f.images[img.ID] = img
	f.mu.Unlock()
	return []*image.Image{img}, nil
}

func (f *fakeImages) Save(ctx context.Context, w io.Writer, names []string) error {
	f.mu.Lock()
	f.saved = append(f.saved, names...)
	f.mu.Unlock()
	_, err := io.WriteString(w, "TARBALL")
	return err
}

func newImageServer(t *testing.T, imgs *fakeImages) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(New(Config{Version: "test", Images: imgs}))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, u string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// jsonLines decodes a JSON progress stream.
func jsonLines(t *testing.T, b []byte) []jsonMessage {
	t.Helper()
	var out []jsonMessage
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		var m jsonMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("bad stream line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestPullStreamsProgressAndErrors(t *testing.T) {
	imgs := newFakeImages()
	srv := newImageServer(t, imgs)

	resp, body := do(t, "POST", srv.URL+"/v1.47/images/create?fromImage=localhost:5000/team/app&tag=1", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	msgs := jsonLines(t, body)
	if len(msgs) != 3 || msgs[1].Status != "Downloading" || msgs[1].Progress == nil || msgs[1].Progress.Total != 20 {
		t.Fatalf("progress stream: %+v", msgs)
	}
	if got := imgs.pulled; len(got) != 1 || got[0] != "localhost:5000/team/app:1" {
		t.Fatalf("pulled %v", got)
	}

	// A digest in tag becomes name@digest.
	d := digest.FromString("x").String()
	do(t, "POST", srv.URL+"/images/create?fromImage=app&tag="+d, nil)
	if got := imgs.pulled[1]; got != "app@"+d {
		t.Fatalf("pulled %q", got)
	}

	// A failed pull answers 200 with the error in the stream, as dockerd.
	resp, body = do(t, "POST", srv.URL+"/images/create?fromImage=missing&tag=latest", nil)
	msgs = jsonLines(t, body)
	if resp.StatusCode != 200 || len(msgs) != 1 || msgs[0].Error == nil || !strings.Contains(msgs[0].ErrorMessage, "manifest unknown") {
		t.Fatalf("failed pull: %d %s", resp.StatusCode, body)
	}

	resp, _ = do(t, "POST", srv.URL+"/images/create", nil)
	if resp.StatusCode != 400 {
		t.Fatalf("no fromImage: status %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/images/create?fromImage=a", nil)
	req.Header.Set("X-Registry-Auth", "!!!not-base64")
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 400 {
		t.Fatalf("bad auth header: status %d", r2.StatusCode)
	}
}

func TestImageInspectListTagDelete(t *testing.T) {
	base := fakeImage("base", "localhost:5000/team/app:1")
	other := fakeImage("other")
	imgs := newFakeImages(base, other)
	srv := newImageServer(t, imgs)

	// Names with slashes and a port reach the store whole.
	resp, body := do(t, "GET", srv.URL+"/images/localhost:5000/team/app:1/json", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("inspect: %d %s", resp.StatusCode, body)
	}
	var ins imagetypes.InspectResponse
	if err := json.Unmarshal(body, &ins); err != nil {
		t.Fatal(err)
	}
	if ins.ID != base.ID.String() || ins.Os != "linux" || ins.Config == nil || ins.Config.Cmd[0] != "sh" || ins.RootFS.Layers[0] != base.Layers[0].String() {
		t.Fatalf("inspect: %+v", ins)
	}

	resp, body = do(t, "GET", srv.URL+"/images/nosuch/json", nil)
	if resp.StatusCode != 404 || !strings.Contains(string(body), "No such image: nosuch") {
		t.Fatalf("missing: %d %s", resp.StatusCode, body)
	}

	resp, body = do(t, "GET", srv.URL+"/images/json", nil)
	var list []imagetypes.Summary
	if err := json.Unmarshal(body, &list); err != nil || resp.StatusCode != 200 || len(list) != 2 {
		t.Fatalf("list: %d %s %v", resp.StatusCode, body, err)
	}
	f := url.QueryEscape(`{"dangling":{"true":true}}`)
	_, body = do(t, "GET", srv.URL+"/images/json?filters="+f, nil)
	list = nil
	_ = json.Unmarshal(body, &list)
	if len(list) != 1 || list[0].ID != other.ID.String() || list[0].RepoTags == nil {
		t.Fatalf("dangling filter: %s", body)
	}
	f = url.QueryEscape(`{"reference":{"localhost:5000/team/*":true}}`)
	_, body = do(t, "GET", srv.URL+"/images/json?filters="+f, nil)
	list = nil
	_ = json.Unmarshal(body, &list)
	if len(list) != 1 || list[0].ID != base.ID.String() {
		t.Fatalf("reference filter: %s", body)
	}

	resp, _ = do(t, "POST", srv.URL+"/images/localhost:5000/team/app:1/tag?repo=mine&tag=2", nil)
	if resp.StatusCode != 201 || !slices.Contains(base.RepoTags, "mine:2") {
		t.Fatalf("tag: %d %v", resp.StatusCode, base.RepoTags)
	}
	resp, _ = do(t, "POST", srv.URL+"/images/nosuch/tag?repo=mine", nil)
	if resp.StatusCode != 404 {
		t.Fatalf("tag missing: %d", resp.StatusCode)
	}

	imgs.inUse[base.ID] = true
	resp, body = do(t, "DELETE", srv.URL+"/images/mine:2", nil)
	if resp.StatusCode != 409 {
		t.Fatalf("delete in use: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "DELETE", srv.URL+"/images/mine:2?force=1", nil)
	var del []imagetypes.DeleteResponse
	if err := json.Unmarshal(body, &del); err != nil || resp.StatusCode != 200 || del[len(del)-1].Deleted != base.ID.String() {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	resp, _ = do(t, "DELETE", srv.URL+"/images/mine:2?force=maybe", nil)
	if resp.StatusCode != 400 {
		t.Fatalf("bad bool: %d", resp.StatusCode)
	}
}

func TestImageLoadAndSave(t *testing.T) {
	imgs := newFakeImages(fakeImage("a", "a:1"))
	srv := newImageServer(t, imgs)

	resp, body := do(t, "POST", srv.URL+"/images/load", strings.NewReader("TARBALL"))
	msgs := jsonLines(t, body)
	if resp.StatusCode != 200 || len(msgs) != 2 || msgs[0].Status != "Loading layer" || msgs[1].Stream != "Loaded image: loaded:1\n" {
		t.Fatalf("load: %d %s", resp.StatusCode, body)
	}
	_, body = do(t, "POST", srv.URL+"/images/load?quiet=1", strings.NewReader("TARBALL"))
	if msgs = jsonLines(t, body); len(msgs) != 1 {
		t.Fatalf("quiet load: %s", body)
	}
	_, body = do(t, "POST", srv.URL+"/images/load", strings.NewReader("junk"))
	if msgs = jsonLines(t, body); len(msgs) != 1 || msgs[0].Error == nil {
		t.Fatalf("bad load: %s", body)
	}

	resp, body = do(t, "GET", srv.URL+"/images/get?names=a:1&names=loaded:1", nil)
	if resp.StatusCode != 200 || string(body) != "TARBALL" || resp.Header.Get("Content-Type") != "application/x-tar" {
		t.Fatalf("save: %d %s", resp.StatusCode, body)
	}
	if !slices.Equal(imgs.saved, []string{"a:1", "loaded:1"}) {
		t.Fatalf("saved %v", imgs.saved)
	}
	resp, _ = do(t, "GET", srv.URL+"/images/get?names=nosuch", nil)
	if resp.StatusCode != 404 {
		t.Fatalf("save missing: %d", resp.StatusCode)
	}
	resp, _ = do(t, "GET", srv.URL+"/images/a:1/get", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("save one: %d", resp.StatusCode)
	}
}

func TestNoImageStoreIsUnavailable(t *testing.T) {
	srv := httptest.NewServer(New(Config{}))
	defer srv.Close()
	resp, body := do(t, "GET", srv.URL+"/images/json", nil)
	if resp.StatusCode != 503 || !strings.Contains(string(body), "no image store") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}
