//go:build windows

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"

	"github.com/berth-dev/berth/platform/hcs"
)

// serviceName is the service the installer registers (installers/windows/berth.nsi).
const serviceName = "berth"

func main() { os.Exit(run(os.Args[1:])) }

// run runs the command line and returns the exit status: 0, 1 on failure, 2 for usage errors.
func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, usage)
		return 2
	}
	switch args[0] {
	case "version", "--version", "-v":
		fmt.Printf("berth-engine %s (commit %s)\n", version, commit)
		return 0
	case "help", "--help", "-h":
		fmt.Println(usage)
		return 0
	case "serve":
	default:
		fmt.Fprintf(os.Stderr, "berth-engine: unknown command %q\n%s\n", args[0], usage)
		return 2
	}
	opts, err := parseServe(args[1:], defaultRoot(os.Getenv), os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if !errors.Is(err, errFlags) {
			fmt.Fprintf(os.Stderr, "berth-engine: %v\n", err)
		}
		return 2
	}
	isService, err := svc.IsWindowsService()
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-engine: %v\n", err)
		return 1
	}
	if isService {
		return runService(opts)
	}
	log := newLogger(os.Stderr, opts.Debug)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, windows.SIGTERM)
	defer stop()
	// After the first Ctrl+C, a second one ends the process at once.
	context.AfterFunc(ctx, stop)
	if err := serve(ctx, opts, log); err != nil {
		log.Error("berth-engine stopped", "err", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// serve runs the engine on the named pipe until ctx is done, then shuts the server down and closes the
// engine (which terminates its containers).
func serve(ctx context.Context, opts serveOptions, log *slog.Logger) error {
	e, err := hcs.NewEngine(hcs.EngineConfig{
		Root: opts.Root, Isolation: opts.Isolation, Version: version, Commit: commit, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("start engine in %s: %w", opts.Root, err)
	}
	l, err := hcs.ListenPipe()
	if err != nil {
		return errors.Join(err, e.Close())
	}
	log.Info("berth-engine serving", "pipe", hcs.PipeName, "root", opts.Root, "isolation", opts.Isolation, "version", version)
	err = e.Serve(ctx, l)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	} else if err != nil {
		err = fmt.Errorf("serve on %s: %w", hcs.PipeName, err)
	}
	log.Info("berth-engine stopping")
	return errors.Join(err, e.Close())
}

// runService runs as the Windows service, logging to ROOT\berth-engine.log.
func runService(opts serveOptions) int {
	s := &service{opts: opts, log: slog.New(slog.DiscardHandler)}
	if f, err := openLog(opts.Root); err != nil {
		// There is no one to tell but the service control manager: Execute reports a failed start.
		s.setupErr = err
	} else {
		defer f.Close()
		s.log = newLogger(f, opts.Debug)
	}
	if err := svc.Run(serviceName, s); err != nil {
		s.log.Error("run as service", "service", serviceName, "err", err)
		return 1
	}
	return 0
}

// openLog opens ROOT\berth-engine.log for appending, creating ROOT if needed.
func openLog(root string) (*os.File, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("engine root %s: %w", root, err)
	}
	path := filepath.Join(root, "berth-engine.log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", path, err)
	}
	return f, nil
}

// service is the svc.Handler: it serves until the service control manager asks it to stop.
type service struct {
	opts     serveOptions
	log      *slog.Logger
	setupErr error // set when the service cannot start (its log cannot be opened)
}

// Service-specific exit codes reported to the service control manager.
const (
	exitFailed = 1 // the engine failed or stopped with an error
	exitSetup  = 2 // the log under ROOT could not be opened
)

// Execute implements svc.Handler.
func (s *service) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	const accepts = svc.AcceptStop | svc.AcceptShutdown
	status <- svc.Status{State: svc.StartPending}
	if s.setupErr != nil {
		return true, exitSetup
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, s.opts, s.log) }()
	status <- svc.Status{State: svc.Running, Accepts: accepts}
	for {
		select {
		case err := <-done:
			// The engine stopped without being asked to: report a service-specific exit code.
			s.log.Error("berth-engine stopped", "err", err)
			status <- svc.Status{State: svc.StopPending}
			return true, exitFailed
		case c := <-req:
			switch c.Cmd {
			case svc.Interrogate:
				status <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				s.log.Info("service stop requested", "cmd", c.Cmd)
				// The HTTP server gets 10 s to drain (Engine.Serve), then the containers are terminated.
				status <- svc.Status{State: svc.StopPending, WaitHint: 30_000}
				cancel()
				if err := <-done; err != nil {
					s.log.Error("berth-engine stopped", "err", err)
					return true, exitFailed
				}
				return false, 0
			default:
				s.log.Warn("unexpected service control request", "cmd", c.Cmd)
			}
		}
	}
}
