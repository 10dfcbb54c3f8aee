package engine

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"runtime"
	"sync"

	"github.com/moby/moby/api/types/system"
)

// Config configures a Server.
type Config struct {
	// Version is berth's version, reported by /version and the Server header.
	Version string
	// Commit is the git commit berth was built from.
	Commit string
	// KernelVersion is reported by /version and /info; empty means unknown.
	KernelVersion string
	// Logger receives one line per failed request; nil means slog.Default().
	Logger *slog.Logger
	// Images is the image store; nil leaves the image endpoints answering 503.
	Images ImageService
	// Containers is the container manager; nil leaves the container
	// endpoints answering 503.
	Containers ContainerService
	// Networks is the network manager; nil (an agent that may not create
	// bridges) leaves the /networks endpoints answering 503.
	Networks NetworkService
	// Host describes the machine for /info.
	Host HostInfo
	// OSType is the containers' OS as clients see it in /_ping, /version and
	// /info: "linux" (default) or "windows" (the HCS backend).
	OSType string
	// StorageDriver names the layer storage in /info and inspect; default
	// "overlayfs".
	StorageDriver string
}

// Server is the engine's HTTP handler.
type Server struct {
	version, commit, kernel string
	osType, storageDriver   string
	log                     *slog.Logger
	classes                 *classes
	handler                 http.Handler
	images                  ImageService
	containers              ContainerService
	networks                NetworkService
	host                    HostInfo
	events                  *eventHub
	stopEvents              context.CancelFunc

	execMu sync.Mutex
	execs  map[string]*execState
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	s := &Server{
		version:    cfg.Version,
		commit:     cfg.Commit,
		kernel:     cfg.KernelVersion,
		log:        cfg.Logger,
		classes:    backendClasses(),
		images:     cfg.Images,
		containers: cfg.Containers,
		networks:   cfg.Networks,
		host:       cfg.Host,
		events:     newEventHub(),
		execs:      map[string]*execState{},
	}
	if s.images == nil {
		s.images = noImages{}
	}
	if s.containers == nil {
		s.containers = noContainers{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopEvents = cancel
	ch, unsubscribe := s.containers.Subscribe()
	go func() {
		defer unsubscribe()
		s.pumpContainerEvents(ctx, ch)
	}()
	if s.version == "" {
		s.version = "dev"
	}
	s.osType, s.storageDriver = cfg.OSType, cfg.StorageDriver
	if s.osType == "" {
		s.osType = "linux"
	}
	if s.storageDriver == "" {
		s.storageDriver = "overlayfs"
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	mux := http.NewServeMux()
	s.routes(mux)
	s.handler = s.withVersion(mux)
	return s
}

// Close stops the server's background work (the event pump). It does not
// close the backends, which the caller owns.
func (s *Server) Close() error {
	s.stopEvents()
	return nil
}

// ServeHTTP serves the Docker Engine API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// apiFunc is a handler that returns its error instead of writing it.
type apiFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) handle(mux *http.ServeMux, pattern string, f apiFunc) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			status := s.classes.statusOf(err)
			if status >= 500 {
				s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			} else {
				s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
			}
			s.classes.writeError(w, err)
		}
	})
}

func (s *Server) routes(mux *http.ServeMux) {
	s.handle(mux, "GET /_ping", s.ping)
	s.handle(mux, "HEAD /_ping", s.ping)
	s.handle(mux, "GET /version", s.getVersion)
	s.imageRoutes(mux)
	s.containerRoutes(mux)
	s.systemRoutes(mux)
}

func (s *Server) ping(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Swarm", "inactive")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodHead {
		h.Set("Content-Length", "0")
		return nil
	}
	_, err := w.Write([]byte("OK"))
	return err
}

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request) error {
	v := system.VersionResponse{
		Platform:      system.PlatformInfo{Name: "berth"},
		Version:       s.version,
		APIVersion:    APIVersion,
		MinAPIVersion: MinAPIVersion,
		Os:            s.osType,
		Arch:          runtime.GOARCH,
		GitCommit:     s.commit,
		GoVersion:     runtime.Version(),
		KernelVersion: s.kernel,
		Components: []system.ComponentVersion{{
			Name:    "Engine",
			Version: s.version,
			Details: map[string]string{
				"ApiVersion":    APIVersion,
				"MinAPIVersion": MinAPIVersion,
				"GitCommit":     s.commit,
				"GoVersion":     runtime.Version(),
				"Os":            s.osType,
				"Arch":          runtime.GOARCH,
				"KernelVersion": s.kernel,
			},
		}},
	}
	return writeJSON(w, http.StatusOK, v)
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}
