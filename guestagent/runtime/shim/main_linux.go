package shim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/guestagent/cgroups"
	"github.com/berth-dev/berth/guestagent/runtime/jsonlog"
	"github.com/berth-dev/berth/guestagent/runtime/libct"
)

// syncFd is the descriptor of the start-up pipe the agent passes.
const syncFd = 3

// Ready is the JSON line a shim writes on the start-up pipe.
type Ready struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

// Main is the body of the re-executed shim (argv[1] == Arg, argv[2] the
// container directory). It returns the process's exit code.
func Main() int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	syncPipe := os.NewFile(syncFd, "shim-sync")
	reported := false
	ready := func(pid int, err error) {
		if reported {
			return
		}
		reported = true
		r := Ready{Pid: pid}
		if err != nil {
			r.Error = err.Error()
		}
		if syncPipe != nil {
			_ = WriteLine(syncPipe, r)
			syncPipe.Close()
		}
	}
	if len(os.Args) < 3 {
		ready(0, errors.New("usage: shim <container-dir>"))
		fmt.Fprintln(os.Stderr, "usage: berth-agent shim <container-dir>")
		return 2
	}
	cfg, err := ReadConfig(os.Args[2])
	if err != nil {
		ready(0, err)
		logger.Error("shim", "err", err)
		return 1
	}
	logger = logger.With("container", cfg.ID)
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		logger.Warn("cannot become a child subreaper", "err", err)
	}
	logs, err := jsonlog.Create(cfg.LogPath)
	if err != nil {
		ready(0, err)
		logger.Error("open log", "err", err)
		return 1
	}
	srv := &Server{
		Config:  *cfg,
		Runtime: LibctRuntime{R: &libct.Runtime{Root: cfg.RuntimeRoot, Logger: logger}},
		Logs:    logs,
		OOMKilled: func() (bool, error) {
			if cfg.CgroupsPath == "" {
				return false, nil
			}
			m, err := cgroups.New(cfg.CgroupsPath)
			if err != nil {
				return false, err
			}
			return m.OOMKilled()
		},
		Logger: logger,
	}
	exit, err := srv.Run(context.Background(), ready)
	if err != nil {
		logger.Error("run container", "err", err)
		return 1
	}
	logger.Info("container exited", "code", exit.ExitCode, "oomKilled", exit.OOMKilled)
	return 0
}

// LibctRuntime adapts *libct.Runtime to Runtime.
type LibctRuntime struct{ R *libct.Runtime }

func (l LibctRuntime) Create(ctx context.Context, id, bundle string, opts libct.CreateOpts) (Process, error) {
	p, err := l.R.Create(ctx, id, bundle, opts)
	if err != nil {
		return nil, err
	}
	return libctProcess{p}, nil
}

func (l LibctRuntime) Start(ctx context.Context, id string) error { return l.R.Start(ctx, id) }

func (l LibctRuntime) Kill(id string, sig syscall.Signal, all bool) error {
	return l.R.Kill(id, sig, all)
}

func (l LibctRuntime) Exec(ctx context.Context, id string, proc *specs.Process, opts libct.ExecOpts) (Process, error) {
	p, err := l.R.Exec(ctx, id, proc, opts)
	if err != nil {
		return nil, err
	}
	return libctProcess{p}, nil
}

func (l LibctRuntime) Delete(ctx context.Context, id string, force bool) error {
	err := l.R.Delete(ctx, id, force)
	if errors.Is(err, libct.ErrNotExist) {
		return nil
	}
	return err
}

type libctProcess struct{ p *libct.Process }

func (p libctProcess) Pid() int                          { return p.p.Pid }
func (p libctProcess) Console() *os.File                 { return p.p.Console }
func (p libctProcess) Wait() (syscall.WaitStatus, error) { return p.p.Wait() }
