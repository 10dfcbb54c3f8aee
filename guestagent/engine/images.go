package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/events"
	imagetypes "github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/storage"

	"github.com/berth-dev/berth/guestagent/image"
)

// ImageService is what the engine needs of the image store; *image.Store
// implements it.
type ImageService interface {
	Pull(ctx context.Context, ref string, opts image.PullOptions) (*image.Image, error)
	Get(ctx context.Context, nameOrID string) (*image.Image, error)
	List(ctx context.Context) ([]*image.Image, error)
	Tag(ctx context.Context, src, ref string) error
	Remove(ctx context.Context, nameOrRef string, force bool) (*image.RemoveResult, error)
	Load(ctx context.Context, r io.Reader, progress image.ProgressFunc) ([]*image.Image, error)
	Save(ctx context.Context, w io.Writer, names []string) error
}

var _ ImageService = (*image.Store)(nil)

func (s *Server) imageRoutes(mux *http.ServeMux) {
	s.handle(mux, "POST /images/create", s.postImagesCreate)
	s.handle(mux, "GET /images/json", s.getImagesJSON)
	s.handle(mux, "POST /images/load", s.postImagesLoad)
	s.handle(mux, "GET /images/get", s.getImagesGet)
	// Image names contain slashes ("localhost:5000/team/app:1"), so the
	// routes below take the rest of the path and split off the action.
	s.handle(mux, "GET /images/{rest...}", s.getImage)
	s.handle(mux, "POST /images/{rest...}", s.postImage)
	s.handle(mux, "DELETE /images/{rest...}", s.deleteImage)
}

// splitAction splits "name/with/slashes/json" into ("name/with/slashes", "json").
func splitAction(rest string, actions ...string) (name, action string, ok bool) {
	for _, a := range actions {
		if n, found := strings.CutSuffix(rest, "/"+a); found && n != "" {
			return n, a, true
		}
	}
	return "", "", false
}

func (s *Server) getImage(w http.ResponseWriter, r *http.Request) error {
	name, action, ok := splitAction(r.PathValue("rest"), "json", "get", "history")
	if !ok {
		return notFoundf("page not found")
	}
	switch action {
	case "json":
		img, err := s.images.Get(r.Context(), name)
		if err != nil {
			return s.noSuchImage(name, err)
		}
		return writeJSON(w, http.StatusOK, inspectImage(img))
	case "get":
		return s.saveImages(w, r, []string{name})
	default:
		return s.imageHistory(w, r, name)
	}
}

func (s *Server) postImage(w http.ResponseWriter, r *http.Request) error {
	name, action, ok := splitAction(r.PathValue("rest"), "tag", "push")
	if !ok {
		return notFoundf("page not found")
	}
	if action == "push" {
		return invalidf("berth does not push images yet")
	}
	repo := r.URL.Query().Get("repo")
	if repo == "" {
		return invalidf("repository name (repo parameter) is required")
	}
	ref := repo
	if tag := r.URL.Query().Get("tag"); tag != "" {
		ref = repo + ":" + tag
	}
	if _, err := s.images.Get(r.Context(), name); err != nil {
		return s.noSuchImage(name, err)
	}
	if err := s.images.Tag(r.Context(), name, ref); err != nil {
		return err
	}
	s.emit(events.ImageEventType, events.ActionTag, name, map[string]string{"name": ref})
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (s *Server) deleteImage(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("rest")
	force, err := boolParam(r, "force")
	if err != nil {
		return err
	}
	res, err := s.images.Remove(r.Context(), name, force)
	if err != nil {
		return s.noSuchImage(name, err)
	}
	out := make([]imagetypes.DeleteResponse, 0, len(res.Untagged)+len(res.Deleted))
	for _, t := range res.Untagged {
		out = append(out, imagetypes.DeleteResponse{Untagged: t})
		s.emit(events.ImageEventType, events.ActionUnTag, t, map[string]string{"name": t})
	}
	for _, d := range res.Deleted {
		out = append(out, imagetypes.DeleteResponse{Deleted: d.String()})
		s.emit(events.ImageEventType, events.ActionDelete, d.String(), nil)
	}
	return writeJSON(w, http.StatusOK, out)
}

// noSuchImage words a not-found error as dockerd does, so that clients that
// match on it (the docker CLI pulls on "No such image") behave the same.
func (s *Server) noSuchImage(name string, err error) error {
	if s.classes.statusOf(err) == http.StatusNotFound {
		return notFoundf("No such image: %s", name)
	}
	return err
}

func (s *Server) getImagesJSON(w http.ResponseWriter, r *http.Request) error {
	imgs, err := s.images.List(r.Context())
	if err != nil {
		return err
	}
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return err
	}
	out := make([]imagetypes.Summary, 0, len(imgs))
	for _, img := range imgs {
		if !f.matchImage(img) {
			continue
		}
		tags := img.RepoTags
		if tags == nil {
			tags = []string{}
		}
		digests := img.RepoDigests
		if digests == nil {
			digests = []string{}
		}
		labels := img.Config.Config.Labels
		if labels == nil {
			labels = map[string]string{}
		}
		out = append(out, imagetypes.Summary{
			ID:          img.ID.String(),
			Created:     img.Created.Unix(),
			Containers:  -1,
			Labels:      labels,
			RepoTags:    tags,
			RepoDigests: digests,
			Size:        img.Size,
			SharedSize:  -1,
		})
	}
	return writeJSON(w, http.StatusOK, out)
}

func inspectImage(img *image.Image) imagetypes.InspectResponse {
	layers := make([]string, len(img.Layers))
	for i, l := range img.Layers {
		layers[i] = l.String()
	}
	tags, digests := img.RepoTags, img.RepoDigests
	if tags == nil {
		tags = []string{}
	}
	if digests == nil {
		digests = []string{}
	}
	var created string
	if !img.Created.IsZero() {
		created = img.Created.UTC().Format(time.RFC3339Nano)
	}
	return imagetypes.InspectResponse{
		ID:           img.ID.String(),
		RepoTags:     tags,
		RepoDigests:  digests,
		Created:      created,
		Author:       img.Config.Author,
		Config:       &dockerspec.DockerOCIImageConfig{ImageConfig: img.Config.Config},
		Architecture: img.Config.Architecture,
		Variant:      img.Config.Variant,
		Os:           img.Config.OS,
		OsVersion:    img.Config.OSVersion,
		Size:         img.Size,
		GraphDriver:  &storage.DriverData{Name: "overlayfs", Data: map[string]string{}},
		RootFS:       imagetypes.RootFS{Type: "layers", Layers: layers},
	}
}

func (s *Server) imageHistory(w http.ResponseWriter, r *http.Request, name string) error {
	img, err := s.images.Get(r.Context(), name)
	if err != nil {
		return s.noSuchImage(name, err)
	}
	hist := img.Config.History
	out := make([]imagetypes.HistoryResponseItem, 0, len(hist))
	for i := len(hist) - 1; i >= 0; i-- {
		h := hist[i]
		item := imagetypes.HistoryResponseItem{ID: "<missing>", CreatedBy: h.CreatedBy, Comment: h.Comment, Tags: []string{}}
		if h.Created != nil {
			item.Created = h.Created.Unix()
		}
		if i == len(hist)-1 {
			item.ID = img.ID.String()
			item.Tags = img.RepoTags
		}
		out = append(out, item)
	}
	return writeJSON(w, http.StatusOK, out)
}

// postImagesCreate pulls fromImage[:tag] and streams Docker's JSON progress.
func (s *Server) postImagesCreate(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	from := q.Get("fromImage")
	if from == "" {
		if q.Get("fromSrc") != "" {
			return invalidf("berth does not import root filesystems (fromSrc) yet")
		}
		return invalidf("fromImage is required")
	}
	ref := from
	if tag := q.Get("tag"); tag != "" {
		if strings.HasPrefix(tag, "sha256:") {
			ref = from + "@" + tag
		} else {
			ref = from + ":" + tag
		}
	}
	auth, err := registryAuth(r.Header.Get("X-Registry-Auth"))
	if err != nil {
		return err
	}
	js := newJSONStream(w)
	img, err := s.images.Pull(r.Context(), ref, image.PullOptions{Auth: auth, Progress: js.progress})
	if err != nil {
		js.fail(err)
		return nil
	}
	s.emit(events.ImageEventType, events.ActionPull, ref, map[string]string{"name": ref, "id": img.ID.String()})
	return nil
}

// registryAuth turns the X-Registry-Auth header into an authenticator; an
// empty header means anonymous (nil lets the store use its keychain).
func registryAuth(header string) (authn.Authenticator, error) {
	if header == "" {
		return nil, nil
	}
	ac, err := authconfig.Decode(header)
	if err != nil {
		return nil, err
	}
	if ac.Username == "" && ac.Password == "" && ac.Auth == "" && ac.IdentityToken == "" && ac.RegistryToken == "" {
		return nil, nil
	}
	return authn.FromConfig(authn.AuthConfig{
		Username:      ac.Username,
		Password:      ac.Password,
		Auth:          ac.Auth,
		IdentityToken: ac.IdentityToken,
		RegistryToken: ac.RegistryToken,
	}), nil
}

func (s *Server) postImagesLoad(w http.ResponseWriter, r *http.Request) error {
	quiet, err := boolParam(r, "quiet")
	if err != nil {
		return err
	}
	js := newJSONStream(w)
	progress := js.progress
	if quiet {
		progress = nil
	}
	imgs, err := s.images.Load(r.Context(), r.Body, progress)
	if err != nil {
		js.fail(err)
		return nil
	}
	for _, img := range imgs {
		s.emit(events.ImageEventType, events.ActionLoad, img.ID.String(), nil)
		if len(img.RepoTags) == 0 {
			js.send(jsonMessage{Stream: "Loaded image ID: " + img.ID.String() + "\n"})
		}
		for _, t := range img.RepoTags {
			js.send(jsonMessage{Stream: "Loaded image: " + t + "\n"})
		}
	}
	return nil
}

func (s *Server) getImagesGet(w http.ResponseWriter, r *http.Request) error {
	names := r.URL.Query()["names"]
	if len(names) == 0 {
		return invalidf("no image names given")
	}
	return s.saveImages(w, r, names)
}

func (s *Server) saveImages(w http.ResponseWriter, r *http.Request, names []string) error {
	for _, n := range names {
		if _, err := s.images.Get(r.Context(), n); err != nil {
			return s.noSuchImage(n, err)
		}
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	if err := s.images.Save(r.Context(), w, names); err != nil {
		// The status is sent; all a client can see is a truncated tarball.
		s.log.Error("image save failed mid-stream", "images", names, "err", err)
	}
	return nil
}

// jsonMessage is one line of dockerd's JSON progress stream. It carries
// both the structured error and the legacy "error" string that older clients
// read.
type jsonMessage struct {
	Stream       string               `json:"stream,omitempty"`
	Status       string               `json:"status,omitempty"`
	Progress     *jsonstream.Progress `json:"progressDetail,omitempty"`
	ID           string               `json:"id,omitempty"`
	Error        *jsonstream.Error    `json:"errorDetail,omitempty"`
	ErrorMessage string               `json:"error,omitempty"`
}

// jsonStream writes progress messages as they come, flushing each, from any
// goroutine.
type jsonStream struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	enc     *json.Encoder
	started bool
}

func newJSONStream(w http.ResponseWriter) *jsonStream {
	return &jsonStream{w: w, enc: json.NewEncoder(w)}
}

func (j *jsonStream) send(m jsonMessage) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.started {
		j.w.Header().Set("Content-Type", "application/json")
		j.w.WriteHeader(http.StatusOK)
		j.started = true
	}
	_ = j.enc.Encode(m) // a gone client shows up as a cancelled request context
	if f, ok := j.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (j *jsonStream) progress(p image.Progress) {
	m := jsonMessage{ID: p.ID, Status: p.Status}
	if p.Current > 0 || p.Total > 0 {
		m.Progress = &jsonstream.Progress{Current: p.Current, Total: p.Total}
	}
	j.send(m)
}

// fail reports err in the stream, as dockerd does once it has answered 200.
func (j *jsonStream) fail(err error) {
	j.send(jsonMessage{Error: &jsonstream.Error{Message: err.Error()}, ErrorMessage: err.Error()})
}

func boolParam(r *http.Request, name string) (bool, error) {
	switch v := strings.ToLower(r.URL.Query().Get(name)); v {
	case "", "0", "false", "no":
		return false, nil
	case "1", "true", "yes":
		return true, nil
	default:
		return false, invalidf("invalid value for %s: %q", name, v)
	}
}

// filters is the decoded "filters" query parameter: {"key":{"value":true}}
// (current clients) or {"key":["value"]} (old ones).
type filters map[string][]string

func parseFilters(raw string) (filters, error) {
	f := filters{}
	if raw == "" {
		return f, nil
	}
	var asMap map[string]map[string]bool
	if err := json.Unmarshal([]byte(raw), &asMap); err == nil {
		for k, vs := range asMap {
			for v, on := range vs {
				if on {
					f[k] = append(f[k], v)
				}
			}
		}
		return f, nil
	}
	var asList map[string][]string
	if err := json.Unmarshal([]byte(raw), &asList); err != nil {
		return nil, invalidf("invalid filter %q: %v", raw, err)
	}
	return filters(asList), nil
}

func (f filters) matchImage(img *image.Image) bool {
	for key, vals := range f {
		switch key {
		case "dangling":
			want := vals[0] == "true" || vals[0] == "1"
			if (len(img.RepoTags) == 0) != want {
				return false
			}
		case "reference":
			ok := false
			for _, pat := range vals {
				for _, t := range img.RepoTags {
					if refMatches(pat, t) {
						ok = true
					}
				}
			}
			if !ok {
				return false
			}
		case "label":
			if !matchLabels(img.Config.Config.Labels, vals) {
				return false
			}
		}
	}
	return true
}

// refMatches matches a reference filter ("busybox", "busybox:1*") against a
// familiar tag ("busybox:latest").
func refMatches(pattern, tag string) bool {
	name, _, _ := strings.Cut(tag, "@")
	repo := name
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		repo = name[:i]
	}
	for _, cand := range []string{name, repo} {
		if ok, _ := path.Match(pattern, cand); ok {
			return true
		}
	}
	return false
}

// matchLabels checks "key" and "key=value" label filters.
func matchLabels(labels map[string]string, vals []string) bool {
	for _, v := range vals {
		k, want, hasVal := strings.Cut(v, "=")
		got, ok := labels[k]
		if !ok || (hasVal && got != want) {
			return false
		}
	}
	return true
}

// noImages answers every image call of an engine configured without a store.
type noImages struct{}

var errNoImages = fmt.Errorf("this engine has no image store: %w", ErrUnavailable)

func (noImages) Pull(context.Context, string, image.PullOptions) (*image.Image, error) {
	return nil, errNoImages
}
func (noImages) Get(context.Context, string) (*image.Image, error) { return nil, errNoImages }
func (noImages) List(context.Context) ([]*image.Image, error)      { return nil, errNoImages }
func (noImages) Tag(context.Context, string, string) error         { return errNoImages }
func (noImages) Save(context.Context, io.Writer, []string) error   { return errNoImages }
func (noImages) Remove(context.Context, string, bool) (*image.RemoveResult, error) {
	return nil, errNoImages
}
func (noImages) Load(context.Context, io.Reader, image.ProgressFunc) ([]*image.Image, error) {
	return nil, errNoImages
}
