package shimtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/creack/pty"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/guestagent/runtime/libct"
	"github.com/berth-dev/berth/guestagent/runtime/shim"
)

// Runtime runs containers as host processes. The zero value is ready.
type Runtime struct {
	mu      sync.Mutex
	ctrs    map[string]*ctr
	deleted []string
}

var _ shim.Runtime = (*Runtime)(nil)

type ctr struct {
	init    *Process
	release *os.File // write end of the pipe init waits on
	started bool
	execs   []*Process
}

// Process is a fake container process.
type Process struct {
	cmd     *exec.Cmd
	console *os.File
	once    sync.Once
	ws      syscall.WaitStatus
	err     error
}

func (p *Process) Pid() int          { return p.cmd.Process.Pid }
func (p *Process) Console() *os.File { return p.console }

// Wait reaps the process (once; later calls return the same status).
func (p *Process) Wait() (syscall.WaitStatus, error) {
	p.once.Do(func() {
		err := p.cmd.Wait()
		if p.cmd.ProcessState != nil {
			p.ws = p.cmd.ProcessState.Sys().(syscall.WaitStatus)
			return
		}
		p.err = err
	})
	return p.ws, p.err
}

func (r *Runtime) get(id string) (*ctr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.ctrs[id]
	if c == nil {
		return nil, fmt.Errorf("container %s: %w", id, libct.ErrNotExist)
	}
	return c, nil
}

// start runs proc's args with stdio or a new pty; with hold, the command
// first waits for a byte on fd 3 (released by Start).
func start(proc *specs.Process, stdio libct.Stdio, hold *os.File) (*Process, error) {
	if proc == nil || len(proc.Args) == 0 {
		return nil, fmt.Errorf("%w: no process args", libct.ErrInvalidSpec)
	}
	args := proc.Args
	if hold != nil {
		args = append([]string{"/bin/sh", "-c", `read _ <&3; exec 3<&-; exec "$@"`, "sh"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = proc.Env
	if fi, err := os.Stat(proc.Cwd); err == nil && fi.IsDir() {
		cmd.Dir = proc.Cwd
	}
	if hold != nil {
		cmd.ExtraFiles = []*os.File{hold}
	}
	p := &Process{cmd: cmd}
	if proc.Terminal {
		master, slave, err := pty.Open()
		if err != nil {
			return nil, fmt.Errorf("open pty: %w", err)
		}
		defer slave.Close()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		p.console = master
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if stdio.Stdin != nil {
			cmd.Stdin = stdio.Stdin
		}
		if stdio.Stdout != nil {
			cmd.Stdout = stdio.Stdout
		}
		if stdio.Stderr != nil {
			cmd.Stderr = stdio.Stderr
		}
	}
	if err := cmd.Start(); err != nil {
		if p.console != nil {
			p.console.Close()
		}
		return nil, fmt.Errorf("start %s: %w", args[0], err)
	}
	return p, nil
}

// Create starts the spec's process from bundle/config.json, held until Start.
func (r *Runtime) Create(ctx context.Context, id, bundle string, opts libct.CreateOpts) (shim.Process, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("%w: %v", libct.ErrInvalidSpec, err)
	}
	r.mu.Lock()
	if r.ctrs == nil {
		r.ctrs = map[string]*ctr{}
	}
	if r.ctrs[id] != nil {
		r.mu.Unlock()
		return nil, fmt.Errorf("container %s: %w", id, libct.ErrExist)
	}
	c := &ctr{}
	r.ctrs[id] = c
	r.mu.Unlock()
	hold, release, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer hold.Close()
	p, err := start(spec.Process, opts.Stdio, hold)
	if err != nil {
		release.Close()
		r.mu.Lock()
		delete(r.ctrs, id)
		r.mu.Unlock()
		return nil, err
	}
	c.init, c.release = p, release
	return p, nil
}

// Start releases init.
func (r *Runtime) Start(ctx context.Context, id string) error {
	c, err := r.get(id)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.started {
		return fmt.Errorf("container %s: %w", id, libct.ErrNotCreated)
	}
	c.started = true
	_, err = c.release.Write([]byte{'\n'})
	c.release.Close()
	return err
}

// Kill signals init, or its whole process group.
func (r *Runtime) Kill(id string, sig syscall.Signal, all bool) error {
	c, err := r.get(id)
	if err != nil {
		return err
	}
	pid := c.init.Pid()
	if all {
		pid = -pid
	}
	if err := syscall.Kill(pid, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("container %s: %w", id, libct.ErrNotRunning)
		}
		return err
	}
	return nil
}

// Exec runs proc on the host.
func (r *Runtime) Exec(ctx context.Context, id string, proc *specs.Process, opts libct.ExecOpts) (shim.Process, error) {
	c, err := r.get(id)
	if err != nil {
		return nil, err
	}
	p, err := start(proc, opts.Stdio, nil)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	c.execs = append(c.execs, p)
	r.mu.Unlock()
	return p, nil
}

// Delete forgets the container, killing its processes with force.
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	r.mu.Lock()
	c := r.ctrs[id]
	if c == nil {
		r.mu.Unlock()
		return nil
	}
	if force {
		_ = syscall.Kill(-c.init.Pid(), syscall.SIGKILL)
		for _, e := range c.execs {
			_ = syscall.Kill(-e.Pid(), syscall.SIGKILL)
		}
	}
	delete(r.ctrs, id)
	r.deleted = append(r.deleted, id)
	r.mu.Unlock()
	return nil
}

// Deleted lists the ids Delete removed, in order.
func (r *Runtime) Deleted() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.deleted...)
}

// Running reports whether container id is known.
func (r *Runtime) Running(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ctrs[id] != nil
}
