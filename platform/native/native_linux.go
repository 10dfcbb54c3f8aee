package native

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/hostshim/daemon"
	"github.com/berth-dev/berth/platform"
)

// Timeouts of the driver.
const (
	stopGrace    = 15 * time.Second // the agent's own shutdown takes up to 10 s
	slirpReady   = 5 * time.Second
	probeTimeout = time.Second
)

// Preflight checks for root: the agent needs namespaces, mounts and cgroups.
func (d *Driver) Preflight() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("native driver: %w: run as root (it creates namespaces, mounts and cgroups)", platform.ErrPrivilege)
	}
	return nil
}

// Create makes data/ and run/ in the instance directory.
func (d *Driver) Create(context.Context) error {
	if err := d.Preflight(); err != nil {
		return err
	}
	for _, dir := range []string{d.p.data, d.p.run} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("native create %s: %w", d.inst.Name, err)
		}
	}
	return nil
}

func (d *Driver) created() bool {
	st, err := os.Stat(d.p.data)
	return err == nil && st.IsDir()
}

// Start launches the agent (and slirp4netns) unless it runs, and waits until its SSH endpoint answers.
func (d *Driver) Start(ctx context.Context) error {
	if err := d.Preflight(); err != nil {
		return err
	}
	if !d.created() {
		return fmt.Errorf("native start %s: %w", d.inst.Name, platform.ErrNotCreated)
	}
	if p, err := daemon.ReadPIDFile(d.p.agentPID); err == nil {
		// Running already (or still starting): wait for its endpoint.
		return d.waitReady(ctx, p, nil)
	}
	agent, err := d.agentPath()
	if err != nil {
		return fmt.Errorf("native start %s: %w", d.inst.Name, err)
	}
	// Leftovers of an agent that died without Stop.
	if err := d.cleanup(ctx); err != nil {
		return fmt.Errorf("native start %s: %w", d.inst.Name, err)
	}
	cgs, err := newTrackingCgroups(d.inst)
	if err != nil {
		return fmt.Errorf("native start %s: %w", d.inst.Name, err)
	}
	if err := os.WriteFile(d.p.cgroupFile, []byte(strings.Join(cgs, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("native start %s: %w", d.inst.Name, err)
	}
	logf, err := os.OpenFile(d.p.agentLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("native start %s: %w", d.inst.Name, err)
	}
	defer logf.Close()
	argv := agentArgs(agent, d.inst, d.p, d.opts.Debug)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	// Unshareflags (not Cloneflags): Go then makes the new mount namespace's "/" recursively private before
	// exec, so nothing the agent mounts propagates to the host.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Unshareflags: unix.CLONE_NEWNS | unix.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("native start %s: start agent: %w", d.inst.Name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }() // reap it if it dies while this process lives
	pid := cmd.Process.Pid
	if err := joinCgroups(cgs, pid); err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("native start %s: %w", d.inst.Name, err)
	}
	if err := daemon.WritePIDFile(d.p.agentPID, pid); err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("native start %s: %w", d.inst.Name, err)
	}
	if !d.opts.NoUplink {
		if err := d.startSlirp(pid); err != nil {
			fmt.Fprintf(logf, "berth native: no outbound network: %v\n", err)
		}
	}
	p, _ := daemon.Identify(pid)
	if err := d.waitReady(ctx, p, exited); err != nil {
		return err
	}
	return nil
}

func (d *Driver) agentPath() (string, error) {
	exe, _ := os.Executable()
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	cwd, _ := os.Getwd()
	return findAgent(d.opts.AgentPath, os.Getenv(AgentEnv), exe, cwd, isFile)
}

// waitReady polls the SSH endpoint until it accepts a connection, the agent exits or ctx ends.
func (d *Driver) waitReady(ctx context.Context, p daemon.Process, exited <-chan struct{}) error {
	step := 5 * time.Millisecond
	for {
		if d.probe() {
			return nil
		}
		if !p.Alive() {
			select {
			case <-exited:
			case <-time.After(100 * time.Millisecond):
			}
			return fmt.Errorf("native start %s: %w: the agent exited; last log lines:\n%s", d.inst.Name, platform.ErrAgentFailed, tail(d.p.agentLog, 15))
		}
		t := time.NewTimer(step)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("native start %s: waiting for the agent: %w", d.inst.Name, ctx.Err())
		}
		step = min(step*2, 100*time.Millisecond)
	}
}

// probe reports whether the SSH endpoint accepts connections.
func (d *Driver) probe() bool {
	c, err := net.DialTimeout("unix", d.p.sshSocket, probeTimeout)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// startSlirp attaches slirp4netns to the agent's network namespace and waits for it to be configured.
func (d *Driver) startSlirp(pid int) error {
	bin := d.opts.Slirp4netns
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("slirp4netns"); err != nil {
			return errors.New("slirp4netns not installed")
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	argv := slirpArgs(bin, pid)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Dir = "/"
	daemon.Detach(cmd)
	logf, err := os.OpenFile(d.p.agentLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err == nil {
		defer logf.Close()
		cmd.Stdout, cmd.Stderr = logf, logf
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("start slirp4netns: %w", err)
	}
	go func() { _ = cmd.Wait() }()
	_ = r.SetReadDeadline(time.Now().Add(slirpReady))
	buf := make([]byte, 1)
	if _, err := r.Read(buf); err != nil || buf[0] != '1' {
		_ = cmd.Process.Kill()
		return fmt.Errorf("slirp4netns did not become ready: %v", err)
	}
	return daemon.WritePIDFile(d.p.slirpPID, cmd.Process.Pid)
}

// Stop terminates the agent, slirp4netns and whatever else runs in the instance's cgroup.
func (d *Driver) Stop(ctx context.Context) error {
	if err := d.Preflight(); err != nil {
		return err
	}
	if p, err := daemon.ReadPIDFile(d.p.agentPID); err == nil {
		if err := daemon.Terminate(ctx, p, stopGrace); err != nil {
			return fmt.Errorf("native stop %s: agent: %w", d.inst.Name, err)
		}
	}
	if err := d.cleanup(ctx); err != nil {
		return fmt.Errorf("native stop %s: %w", d.inst.Name, err)
	}
	return nil
}

// cleanup ends slirp4netns and the processes left in the instance's cgroup (containers outliving the
// agent), removes that cgroup and the stale pid files and socket.
func (d *Driver) cleanup(ctx context.Context) error {
	if p, err := daemon.ReadPIDFile(d.p.slirpPID); err == nil {
		if err := daemon.Terminate(ctx, p, 2*time.Second); err != nil {
			return fmt.Errorf("slirp4netns: %w", err)
		}
	}
	if b, err := os.ReadFile(d.p.cgroupFile); err == nil {
		if err := removeCgroups(ctx, strings.Fields(string(b))); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, f := range []string{d.p.cgroupFile, d.p.agentPID, d.p.slirpPID, d.p.sshSocket, d.p.handoffSocket} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Delete stops the instance and removes the driver's state (data, run, logs).
func (d *Driver) Delete(ctx context.Context) error {
	if err := d.Stop(ctx); err != nil {
		return err
	}
	for _, p := range []string{d.p.data, d.p.run, d.p.agentLog} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("native delete %s: %w", d.inst.Name, err)
		}
	}
	return nil
}

// Status reads the pid file, checks the process and probes the endpoint.
func (d *Driver) Status(context.Context) (platform.Status, error) {
	st := platform.Status{Endpoint: "unix:" + d.p.sshSocket}
	if !d.created() {
		st.State = platform.StateNotCreated
		return st, nil
	}
	p, err := daemon.ReadPIDFile(d.p.agentPID)
	if err != nil {
		st.State = platform.StateStopped
		return st, nil
	}
	st.PID = p.PID
	if d.probe() {
		st.State = platform.StateRunning
	} else {
		st.State = platform.StateDegraded
		st.Notes = append(st.Notes, "agent process runs but its SSH endpoint does not answer")
	}
	if sp, err := daemon.ReadPIDFile(d.p.slirpPID); err == nil {
		st.Notes = append(st.Notes, fmt.Sprintf("outbound network: slirp4netns (pid %d), host loopback at 10.0.2.2", sp.PID))
	} else {
		st.Notes = append(st.Notes, "no outbound network (slirp4netns not installed or disabled)")
	}
	return st, nil
}

// Dial connects to the agent's SSH endpoint.
func (d *Driver) Dial(ctx context.Context) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "unix", d.p.sshSocket)
	if err != nil {
		if _, perr := daemon.ReadPIDFile(d.p.agentPID); perr != nil {
			return nil, fmt.Errorf("native dial %s: %w", d.inst.Name, platform.ErrNotRunning)
		}
		return nil, fmt.Errorf("native dial %s: %w", d.inst.Name, err)
	}
	return c, nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
