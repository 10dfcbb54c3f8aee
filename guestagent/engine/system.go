package engine

import (
	"context"
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	imagetypes "github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/system"

	"github.com/berth-dev/berth/guestagent/runtime/container"
)

// HostInfo describes the machine the engine runs on, for /info. The agent
// fills it; the engine itself makes no system calls for it.
type HostInfo struct {
	ID              string // stable engine id
	Name            string // host name
	OperatingSystem string // e.g. "berth VM (Debian kernel)" or the host's PRETTY_NAME
	NCPU            int
	MemTotal        int64
	RootDir         string // where images and containers live
	CgroupVersion   string // "1" or "2"
}

func (s *Server) systemRoutes(mux *http.ServeMux) {
	s.handle(mux, "GET /info", s.getInfo)
	s.handle(mux, "GET /events", s.getEvents)
	s.handle(mux, "GET /system/df", s.getSystemDF)
}

func (s *Server) getInfo(w http.ResponseWriter, r *http.Request) error {
	info := system.Info{
		ID:                 s.host.ID,
		Driver:             s.storageDriver,
		DriverStatus:       [][2]string{},
		MemoryLimit:        true,
		SwapLimit:          true,
		CPUCfsPeriod:       true,
		CPUCfsQuota:        true,
		CPUShares:          true,
		PidsLimit:          true,
		IPv4Forwarding:     true,
		NGoroutines:        runtime.NumGoroutine(),
		SystemTime:         time.Now().Format(time.RFC3339Nano),
		LoggingDriver:      "json-file",
		CgroupDriver:       "cgroupfs",
		CgroupVersion:      s.host.CgroupVersion,
		NEventsListener:    s.events.listeners(),
		KernelVersion:      s.kernel,
		OperatingSystem:    s.host.OperatingSystem,
		OSType:             s.osType,
		Architecture:       goarchToUname(runtime.GOARCH),
		IndexServerAddress: "https://index.docker.io/v1/",
		NCPU:               s.host.NCPU,
		MemTotal:           s.host.MemTotal,
		DockerRootDir:      s.host.RootDir,
		Name:               s.host.Name,
		Labels:             []string{},
		ServerVersion:      s.version,
		Runtimes:           map[string]system.RuntimeWithStatus{"berth": {}},
		DefaultRuntime:     "berth",
		SecurityOptions:    []string{"name=no-new-privileges"},
		Warnings:           []string{},
	}
	if list, err := s.containers.List(container.ListOptions{All: true}); err == nil {
		for _, c := range list {
			info.Containers++
			switch {
			case c.State.Paused:
				info.ContainersPaused++
			case c.State.Running:
				info.ContainersRunning++
			default:
				info.ContainersStopped++
			}
		}
	}
	if imgs, err := s.images.List(r.Context()); err == nil {
		info.Images = len(imgs)
	}
	return writeJSON(w, http.StatusOK, info)
}

// goarchToUname maps GOARCH to the machine names docker info shows.
func goarchToUname(a string) string {
	switch a {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return a
}

// legacyDiskUsage is /system/df before API 1.52.
type legacyDiskUsage struct {
	LayersSize int64
	Images     []imagetypes.Summary
	Containers []ctypes.Summary
	Volumes    []any
	BuildCache []any
}

func (s *Server) getSystemDF(w http.ResponseWriter, r *http.Request) error {
	imgs, err := s.images.List(r.Context())
	if err != nil {
		return err
	}
	list, err := s.containers.List(container.ListOptions{All: true})
	if err != nil {
		return err
	}
	users := map[string]int64{}
	var ctrs []ctypes.Summary
	var active int64
	for _, c := range list {
		users[c.Image]++
		ctrs = append(ctrs, summarize(c))
		if c.State.Running {
			active++
		}
	}
	var layers int64
	var isums []imagetypes.Summary
	var activeImages int64
	for _, img := range imgs {
		layers += img.Size
		n := users[img.ID.String()]
		if n > 0 {
			activeImages++
		}
		tags := img.RepoTags
		if tags == nil {
			tags = []string{}
		}
		isums = append(isums, imagetypes.Summary{
			ID: img.ID.String(), Created: img.Created.Unix(), Size: img.Size, SharedSize: -1,
			Containers: n, RepoTags: tags, RepoDigests: []string{}, Labels: map[string]string{},
		})
	}
	if compareVersions(requestVersion(r.Context()), "1.52") < 0 {
		return writeJSON(w, http.StatusOK, legacyDiskUsage{
			LayersSize: layers, Images: nonNil(isums), Containers: nonNil(ctrs), Volumes: []any{}, BuildCache: []any{},
		})
	}
	return writeJSON(w, http.StatusOK, system.DiskUsage{
		ImageUsage:     &imagetypes.DiskUsage{ActiveCount: activeImages, TotalCount: int64(len(imgs)), TotalSize: layers, Items: isums},
		ContainerUsage: &ctypes.DiskUsage{ActiveCount: active, TotalCount: int64(len(ctrs)), Items: ctrs},
	})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// eventHub keeps the recent events for since/until replays and fans new
// ones out to /events listeners.
type eventHub struct {
	mu     sync.Mutex
	recent []events.Message
	subs   map[chan events.Message]struct{}
}

const eventHistory = 1024

func newEventHub() *eventHub {
	return &eventHub{subs: map[chan events.Message]struct{}{}}
}

func (h *eventHub) publish(m events.Message) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.recent) == eventHistory {
		copy(h.recent, h.recent[1:])
		h.recent = h.recent[:eventHistory-1]
	}
	h.recent = append(h.recent, m)
	for ch := range h.subs {
		select {
		case ch <- m:
		default: // a listener that does not keep up loses events, never the engine
		}
	}
}

// subscribe returns the recorded events and a channel of new ones.
func (h *eventHub) subscribe() ([]events.Message, chan events.Message, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	past := append([]events.Message(nil), h.recent...)
	ch := make(chan events.Message, 256)
	h.subs[ch] = struct{}{}
	return past, ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs, ch)
	}
}

func (h *eventHub) listeners() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// emit records an event of type typ about actor id.
func (s *Server) emit(typ events.Type, action events.Action, id string, attrs map[string]string) {
	now := time.Now()
	if attrs == nil {
		attrs = map[string]string{}
	}
	s.events.publish(events.Message{
		Type: typ, Action: action, Actor: events.Actor{ID: id, Attributes: attrs},
		Scope: "local", Time: now.Unix(), TimeNano: now.UnixNano(),
	})
}

// pumpContainerEvents turns the manager's events into API events until ctx
// ends.
func (s *Server) pumpContainerEvents(ctx context.Context, ch <-chan container.Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-ch:
			if !ok {
				return
			}
			attrs := map[string]string{}
			for k, v := range e.Attributes {
				attrs[k] = v
			}
			if e.Action == "destroy" {
				s.forgetExecs(e.ID)
			}
			t := e.Time
			if t.IsZero() {
				t = time.Now()
			}
			s.events.publish(events.Message{
				Type: events.ContainerEventType, Action: events.Action(e.Action),
				Actor: events.Actor{ID: e.ID, Attributes: attrs}, Scope: "local",
				Time: t.Unix(), TimeNano: t.UnixNano(),
			})
		}
	}
}

func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) error {
	now := time.Now()
	since, err := parseTime(r.URL.Query().Get("since"), now)
	if err != nil {
		return err
	}
	until, err := parseTime(r.URL.Query().Get("until"), now)
	if err != nil {
		return err
	}
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return err
	}
	past, ch, cancel := s.events.subscribe()
	defer cancel()

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	if fl != nil {
		fl.Flush()
	}
	enc := json.NewEncoder(w)
	send := func(m events.Message) error {
		if err := enc.Encode(m); err != nil {
			return err
		}
		if fl != nil {
			fl.Flush()
		}
		return nil
	}
	inWindow := func(m events.Message) bool {
		t := time.Unix(0, m.TimeNano)
		return (since.IsZero() || !t.Before(since)) && (until.IsZero() || !t.After(until))
	}
	if !since.IsZero() {
		for _, m := range past {
			if inWindow(m) && f.matchEvent(m) {
				if err := send(m); err != nil {
					return nil
				}
			}
		}
	}
	var stop <-chan time.Time
	if !until.IsZero() {
		if !until.After(now) {
			return nil
		}
		t := time.NewTimer(until.Sub(now))
		defer t.Stop()
		stop = t.C
	}
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-stop:
			return nil
		case m := <-ch:
			if inWindow(m) && f.matchEvent(m) {
				if err := send(m); err != nil {
					return nil
				}
			}
		}
	}
}

// matchEvent applies Docker's event filters: type, event (action),
// container, image, label.
func (f filters) matchEvent(m events.Message) bool {
	for key, vals := range f {
		ok := false
		for _, v := range vals {
			switch key {
			case "type":
				ok = ok || string(m.Type) == v
			case "event":
				ok = ok || string(m.Action) == v || strings.HasPrefix(string(m.Action), v+":")
			case "container":
				ok = ok || m.Type == events.ContainerEventType && (m.Actor.ID == v || strings.HasPrefix(m.Actor.ID, v) || m.Actor.Attributes["name"] == v)
			case "image":
				ok = ok || m.Actor.Attributes["image"] == v || (m.Type == events.ImageEventType && m.Actor.ID == v)
			case "label":
				k, val, hasVal := strings.Cut(v, "=")
				got, present := m.Actor.Attributes[k]
				ok = ok || (present && (!hasVal || got == val))
			default:
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
