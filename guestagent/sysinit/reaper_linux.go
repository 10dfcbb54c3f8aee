package sysinit

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
)

// reaper owns every wait of PID 1: one loop collects every exit status with wait4(-1) whenever SIGCHLD
// arrives, hands the statuses of the processes started through it to their waiters and drops those of
// orphans re-parented to PID 1. Nothing else in the process may call wait (os/exec's Cmd.Wait would race
// with the loop), so every child is started through start.
type reaper struct {
	log     *slog.Logger
	mu      sync.Mutex
	waiters map[int]chan unix.WaitStatus
	sigc    chan os.Signal
	stop    chan struct{}
	done    chan struct{}
}

func newReaper(log *slog.Logger) *reaper {
	r := &reaper{
		log:     log,
		waiters: map[int]chan unix.WaitStatus{},
		sigc:    make(chan os.Signal, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	signal.Notify(r.sigc, unix.SIGCHLD)
	go r.loop()
	return r
}

func (r *reaper) loop() {
	defer close(r.done)
	for {
		r.reapAll()
		select {
		case <-r.sigc:
		case <-r.stop:
			signal.Stop(r.sigc)
			return
		}
	}
}

// reapAll collects every exited child without blocking.
func (r *reaper) reapAll() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		// The lock orders this after start's registration of pid.
		r.mu.Lock()
		c, ok := r.waiters[pid]
		delete(r.waiters, pid)
		r.mu.Unlock()
		if ok {
			c <- ws
		} else {
			r.log.Debug("reaped orphan", "pid", pid, "status", describe(ws))
		}
	}
}

// children reports whether PID 1 has any child left.
func (r *reaper) children() bool {
	var info unix.Siginfo
	// WNOWAIT leaves any status for the loop (wait4 does not take it; waitid does).
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return !errors.Is(err, unix.ECHILD)
}

// start starts argv with the given stdio and returns its pid and a channel that receives its status.
func (r *reaper) start(argv []string, attr *os.ProcAttr) (int, <-chan unix.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, err := os.StartProcess(argv[0], argv, attr)
	if err != nil {
		return 0, nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	c := make(chan unix.WaitStatus, 1)
	r.waiters[p.Pid] = c
	pid := p.Pid
	// Release drops the pidfd; the loop reaps the pid.
	_ = p.Release()
	return pid, c, nil
}

// run runs argv to completion with its output going to out.
func (r *reaper) run(out *os.File, argv ...string) error {
	_, c, err := r.start(argv, &os.ProcAttr{Dir: "/", Files: []*os.File{nil, out, out}})
	if err != nil {
		return err
	}
	if ws := <-c; !ws.Exited() || ws.ExitStatus() != 0 {
		return fmt.Errorf("%s: %s", argv[0], describe(ws))
	}
	return nil
}

func (r *reaper) close() {
	close(r.stop)
	<-r.done
}

func describe(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("status %#x", uint32(ws))
}
