// Package hostagent is the long-running host process of an instance (`berth hostagent`, started detached by
// `berth start`, one per instance): it keeps the SSH link to the agent (transport.Client: pinned host key,
// keepalives, reconnect with backoff), serves the instance's Docker API socket by relaying each connection
// as a direct-streamlocal channel to the engine socket inside the guest (package apisocket), and publishes
// containers' ports on the host (package portfwd).
package hostagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/moby/moby/client"
	"golang.org/x/crypto/ssh"

	"github.com/berth-dev/berth/hostshim/apisocket"
	"github.com/berth-dev/berth/hostshim/daemon"
	"github.com/berth-dev/berth/hostshim/portfwd"
	"github.com/berth-dev/berth/hostshim/transport"
)

// ErrAlreadyRunning: another hostagent holds the instance's pid file.
var ErrAlreadyRunning = errors.New("hostagent: already running")

// Config configures Run.
type Config struct {
	// Dial reaches the agent's SSH endpoint (the platform driver's Dial).
	Dial transport.Dialer
	// Signer is the instance's client key.
	Signer ssh.Signer
	// HostKey is the agent's pinned host key.
	HostKey ssh.PublicKey
	// EngineSocket is the engine's unix socket inside the guest.
	EngineSocket string
	// HandoffSocket is the agent's handoff socket on this host (platform.Handoffer); empty carries every
	// published port over SSH.
	HandoffSocket string
	// APISocket is the host socket to serve (~/.berth/<instance>/docker.sock).
	APISocket string
	// PIDFile is the hostagent's pid file; empty means none.
	PIDFile string
	// KeepAlive is the SSH keepalive interval; 0 means transport.DefaultKeepAlive.
	KeepAlive time.Duration
	// Target chooses where published ports are dialled in the guest; nil means portfwd.DefaultTarget.
	Target portfwd.TargetFunc
	// Logger receives the logs; nil discards them.
	Logger *slog.Logger
}

// Run serves until ctx ends, then removes the socket and pid file and returns nil. It fails at once if
// another hostagent runs or the socket cannot be created; an unreachable agent is not an error (the link
// is retried, and API clients wait for it).
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.PIDFile != "" {
		if p, err := daemon.ReadPIDFile(cfg.PIDFile); err == nil {
			return fmt.Errorf("%w (pid %d)", ErrAlreadyRunning, p.PID)
		}
		if err := daemon.WritePIDFile(cfg.PIDFile, os.Getpid()); err != nil {
			return err
		}
		defer removeOwnPIDFile(cfg.PIDFile)
	}
	tc, err := transport.New(transport.Config{
		Dial:          cfg.Dial,
		Signer:        cfg.Signer,
		HostKey:       cfg.HostKey,
		KeepAlive:     cfg.KeepAlive,
		HandoffSocket: cfg.HandoffSocket,
		Logger:        log.With("component", "transport"),
	})
	if err != nil {
		return err
	}
	defer tc.Close()

	l, err := apisocket.Listen(cfg.APISocket, log.With("component", "apisocket"))
	if err != nil {
		return err
	}
	defer os.Remove(cfg.APISocket)

	engine, err := client.New(
		client.WithHost("unix://"+cfg.EngineSocket),
		client.WithDialContext(func(ctx context.Context, _, _ string) (net.Conn, error) {
			return tc.DialStreamLocal(ctx, cfg.EngineSocket)
		}),
		client.WithAPIVersionNegotiation(),
		client.WithUserAgent("berth-hostagent"),
	)
	if err != nil {
		l.Close()
		return fmt.Errorf("engine client: %w", err)
	}
	defer engine.Close()
	pf, err := portfwd.New(portfwd.Config{
		Engine: portfwd.NewMobyEngine(engine),
		Dialer: tc,
		Target: cfg.Target,
		Logger: log.With("component", "portfwd"),
	})
	if err != nil {
		l.Close()
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Add(2)
	go func() {
		defer wg.Done()
		err := apisocket.Serve(ctx, l, func(ctx context.Context) (net.Conn, error) {
			return tc.DialStreamLocal(ctx, cfg.EngineSocket)
		}, log.With("component", "apisocket"))
		if ctx.Err() == nil {
			errc <- fmt.Errorf("serve %s: %w", cfg.APISocket, err)
		}
	}()
	go func() {
		defer wg.Done()
		_ = pf.Run(ctx)
	}()
	// Connect eagerly so that a wrong host key shows in the log at once.
	go func() {
		if err := tc.Connect(ctx); err != nil && ctx.Err() == nil {
			log.Warn("agent not reachable yet", "err", err)
		}
	}()
	log.Info("hostagent serving", "socket", cfg.APISocket, "engine", cfg.EngineSocket, "pid", os.Getpid())
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	cancel()
	wg.Wait()
	log.Info("hostagent stopped")
	return runErr
}

// removeOwnPIDFile removes the pid file if it still names this process.
func removeOwnPIDFile(path string) {
	if p, err := daemon.ReadPIDFile(path); err == nil && p.PID == os.Getpid() {
		os.Remove(path)
	}
}
