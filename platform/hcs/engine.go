package hcs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/guestagent/engine"
	"github.com/berth-dev/berth/guestagent/image"
	"github.com/berth-dev/berth/guestagent/runtime/container"
)

var _ ImageStore = (*image.Store)(nil)

// EngineConfig configures the Windows engine.
type EngineConfig struct {
	// Root holds images (image/), layer folders (windowsfilter/) and containers (containers/); for example
	// C:\ProgramData\berth.
	Root string
	// Isolation is IsolationProcess (default) or IsolationHyperV.
	Isolation string
	// AllowUNC allows UNC bind sources.
	AllowUNC bool
	// Version and Commit are berth's, reported by /version.
	Version, Commit string
	// Logger receives the engine's logs; nil discards them.
	Logger *slog.Logger
}

// Engine is berth's engine API on Windows: the image store (Windows images), the HCS container service
// and the engine's HTTP handler, served on the named pipe.
type Engine struct {
	images  *image.Store
	service *Service
	server  *engine.Server
}

// NewEngine opens the image store and the container service under cfg.Root. It needs Windows (the HCS
// runtime); elsewhere it returns an error wrapping ErrNotSupported.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	layerRoot := filepath.Join(cfg.Root, "windowsfilter")
	rt, err := NewRuntime(RuntimeConfig{LayerRoot: layerRoot, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(layerRoot, 0o700); err != nil {
		return nil, fmt.Errorf("engine root %s: %w", cfg.Root, err)
	}
	e := &Engine{}
	store, err := image.Open(image.Options{
		Root:     filepath.Join(cfg.Root, "image"),
		Logger:   log,
		Platform: ocispec.Platform{OS: "windows", Architecture: runtime.GOARCH},
		InUse: func(id digest.Digest) bool {
			if e.service == nil {
				return false
			}
			l, _ := e.service.List(container.ListOptions{All: true})
			for _, c := range l {
				if c.Image == id.String() {
					return true
				}
			}
			return false
		},
	})
	if err != nil {
		return nil, err
	}
	svc, err := NewService(ServiceConfig{
		Root: filepath.Join(cfg.Root, "containers"), Isolation: cfg.Isolation, HostCPUs: runtime.NumCPU(),
		AllowUNC: cfg.AllowUNC, Images: &StoreImages{Store: store, LayerRoot: layerRoot}, Logger: log,
	}, rt)
	if err != nil {
		store.Close()
		return nil, err
	}
	host, _ := os.Hostname()
	e.images, e.service = store, svc
	e.server = engine.New(engine.Config{
		Version: cfg.Version, Commit: cfg.Commit, Logger: log, Images: store, Containers: svc,
		Host: engine.HostInfo{ID: "berth-hcs", Name: host, OperatingSystem: "Windows (berth hcs)", NCPU: runtime.NumCPU(), RootDir: cfg.Root},
	})
	return e, nil
}

// Serve serves the engine API on l (ListenPipe) until Shutdown; it returns http.ErrServerClosed then.
func (e *Engine) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: e.server, ReadHeaderTimeout: 30 * time.Second}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	defer stop()
	return srv.Serve(l)
}

// Close terminates the containers and closes the engine and the image store.
func (e *Engine) Close() error {
	return errors.Join(e.server.Close(), e.service.Close(), e.images.Close())
}
