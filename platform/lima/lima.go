package lima

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/berth-dev/berth/platform"
)

// Driver runs one berth instance as a Lima VM. Create it with New.
type Driver struct {
	inst platform.Instance
	opts Options // defaulted and validated
	name string  // Lima instance name
	log  *slog.Logger
}

var (
	_ platform.Driver      = (*Driver)(nil)
	_ platform.Preflighter = (*Driver)(nil)
)

// New returns the driver of inst. It checks opts but runs nothing.
func New(inst platform.Instance, opts Options) (*Driver, error) {
	o := opts.withDefaults(runtime.GOOS, runtime.GOARCH)
	if o.HomeDir == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("lima driver %s: %w", inst.Name, err)
		}
		o.HomeDir = h
	}
	if o.LimaHome == "" {
		o.LimaHome = filepath.Join(inst.Dir, "lima")
	}
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("lima driver %s: %w", inst.Name, err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := InstanceName(inst.Name)
	return &Driver{inst: inst, opts: o, name: name, log: log.With("driver", Name, "lima_instance", name)}, nil
}

// Name is "lima".
func (d *Driver) Name() string { return Name }

// EngineSocket is the engine's socket in the guest.
func (d *Driver) EngineSocket() string { return EngineSocket }

// YAMLPath is the lima.yaml the driver writes in the instance directory.
func (d *Driver) YAMLPath() string { return filepath.Join(d.inst.Dir, "lima.yaml") }

// shareDir is the host directory shared read-only at ShareMountPoint.
func (d *Driver) shareDir() string { return filepath.Join(d.inst.Dir, "lima-share") }

// Preflight checks that Lima can run here and that limactl is installed.
func (d *Driver) Preflight() error {
	return preflight(runtime.GOOS, d.opts, exec.LookPath)
}

// preflight is Preflight for a host running goos.
func preflight(goos string, o Options, lookPath func(string) (string, error)) error {
	switch {
	case goos != "darwin" && goos != "linux":
		return fmt.Errorf("lima driver on %s: %w (macOS and Linux hosts only)", goos, platform.ErrUnsupported)
	case o.VMType == VMTypeVZ && goos != "darwin":
		return fmt.Errorf("lima vm type vz on %s: %w (macOS only; use qemu)", goos, platform.ErrUnsupported)
	}
	if _, err := lookPath(o.Limactl); err != nil {
		return fmt.Errorf("lima driver: %w: limactl not found (%w); install Lima (brew install lima)", platform.ErrUnsupported, err)
	}
	return nil
}

// Create writes lima.yaml and the share, then runs `limactl create`. It boots nothing.
func (d *Driver) Create(ctx context.Context) error {
	e, err := d.entry(ctx)
	if err != nil {
		return err
	}
	if e != nil {
		return nil
	}
	if err := d.prepareShare(); err != nil {
		return err
	}
	b, err := MarshalYAML(BuildYAML(d.opts, d.inst.CPUs, d.inst.MemoryMiB, d.shareDir()))
	if err != nil {
		return err
	}
	if err := writeFileAtomic(d.YAMLPath(), bytes.NewReader(b), 0o600); err != nil {
		return fmt.Errorf("lima create %s: %w", d.name, err)
	}
	if _, err := d.limactl(ctx, createArgv(d.name, d.YAMLPath())...); err != nil {
		return fmt.Errorf("lima create %s: %w", d.name, err)
	}
	d.log.Info("created", "yaml", d.YAMLPath())
	return nil
}

// Start refreshes the share (agent binary, keys) and runs `limactl start`, which returns once the
// provisioning script has run and the readiness probe sees the engine socket.
func (d *Driver) Start(ctx context.Context) error {
	e, err := d.entry(ctx)
	if err != nil {
		return err
	}
	if e == nil {
		return fmt.Errorf("lima start %s: %w", d.name, platform.ErrNotCreated)
	}
	if e.Status == LimaStatusRunning {
		return nil
	}
	if err := d.prepareShare(); err != nil {
		return err
	}
	if _, err := d.limactl(ctx, startArgv(d.name, d.opts.StartTimeout)...); err != nil {
		return fmt.Errorf("lima start %s: %w: %w", d.name, platform.ErrAgentFailed, err)
	}
	st, err := d.Status(ctx)
	if err != nil {
		return err
	}
	if st.State != platform.StateRunning {
		return fmt.Errorf("lima start %s: %w: state %s after limactl start (%s)", d.name, platform.ErrAgentFailed, st.State, strings.Join(st.Notes, "; "))
	}
	d.log.Info("started", "endpoint", st.Endpoint)
	return nil
}

// Stop runs `limactl stop` (a guest shutdown), then `limactl stop --force` if that fails.
func (d *Driver) Stop(ctx context.Context) error {
	e, err := d.entry(ctx)
	if err != nil {
		return err
	}
	if e == nil || e.Status == LimaStatusStopped {
		return nil
	}
	if _, err := d.limactl(ctx, stopArgv(d.name, false)...); err != nil {
		d.log.Warn("graceful stop failed; forcing", "err", err)
		if _, ferr := d.limactl(ctx, stopArgv(d.name, true)...); ferr != nil {
			return fmt.Errorf("lima stop %s: %w", d.name, errors.Join(err, ferr))
		}
	}
	d.log.Info("stopped")
	return nil
}

// Delete runs `limactl delete --force` and removes lima.yaml, the share and a LIMA_HOME of the driver's own.
func (d *Driver) Delete(ctx context.Context) error {
	e, err := d.entry(ctx)
	if err != nil {
		return err
	}
	if e != nil {
		if _, err := d.limactl(ctx, deleteArgv(d.name)...); err != nil {
			return fmt.Errorf("lima delete %s: %w", d.name, err)
		}
	}
	rm := []string{d.YAMLPath(), d.shareDir()}
	if d.opts.LimaHome == filepath.Join(d.inst.Dir, "lima") {
		rm = append(rm, d.opts.LimaHome)
	}
	for _, p := range rm {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("lima delete %s: %w", d.name, err)
		}
	}
	if e != nil {
		d.log.Info("deleted")
	}
	return nil
}

// Status asks `limactl list --json`.
func (d *Driver) Status(ctx context.Context) (platform.Status, error) {
	e, err := d.entry(ctx)
	if err != nil {
		return platform.Status{}, err
	}
	return statusOf(e), nil
}

// Dial connects to the guest's sshd at the host address Lima forwards to it.
func (d *Driver) Dial(ctx context.Context) (net.Conn, error) {
	e, err := d.entry(ctx)
	if err != nil {
		return nil, err
	}
	st := statusOf(e)
	if st.State != platform.StateRunning {
		return nil, fmt.Errorf("lima dial %s: %w (%s)", d.name, platform.ErrNotRunning, st.State)
	}
	addr := e.sshEndpoint()
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("lima dial %s at %s: %w", d.name, addr, err)
	}
	return c, nil
}

// entry returns the instance as `limactl list --json` reports it, nil if absent.
func (d *Driver) entry(ctx context.Context) (*ListEntry, error) {
	if _, err := os.Stat(d.opts.LimaHome); errors.Is(err, os.ErrNotExist) {
		return nil, nil // nothing was ever created with this LIMA_HOME (and limactl would create it)
	}
	out, err := d.limactl(ctx, listArgv()...)
	if err != nil {
		return nil, fmt.Errorf("lima status %s: %w", d.name, err)
	}
	entries, err := ParseList(out)
	if err != nil {
		return nil, fmt.Errorf("lima status %s: %w", d.name, err)
	}
	return findEntry(entries, d.name), nil
}

// limactl runs limactl with args and LIMA_HOME set, returning its stdout.
func (d *Driver) limactl(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, d.opts.Limactl, args...)
	cmd.Env = append(os.Environ(), "LIMA_HOME="+d.opts.LimaHome)
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	// `limactl start` leaves Lima's hostagent running: never wait for descendants holding our pipes.
	cmd.WaitDelay = 5 * time.Second
	d.log.Debug("limactl", "args", args)
	err := cmd.Run()
	if err != nil && !(errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success()) {
		return nil, fmt.Errorf("%w: limactl %s: %w: %s", ErrLimactl, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// prepareShare fills the share with the agent binary (checked for the guest's arch) and the instance's keys.
func (d *Driver) prepareShare() error {
	agent, err := d.agentPath()
	if err != nil {
		return err
	}
	dir := d.shareDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("lima share %s: %w", dir, err)
	}
	files := []struct {
		src, dst string
		mode     os.FileMode
		check    bool
	}{
		{agent, shareAgent, 0o755, true},
		{d.inst.HostKeyFile, shareHostKey, 0o600, false},
		{d.inst.AuthorizedKeysFile, shareAuthorizedKeys, 0o644, false},
	}
	for _, f := range files {
		if f.src == "" {
			return fmt.Errorf("lima share %s: %w: no source for %s", dir, ErrInvalidOptions, f.dst)
		}
		if err := copyFile(f.src, filepath.Join(dir, f.dst), f.mode, f.check, GoArch(d.opts.Arch)); err != nil {
			return fmt.Errorf("lima share %s: %w", dir, err)
		}
	}
	return nil
}

// agentPath finds the agent binary (see Options.AgentPath): the first candidate of agentCandidates that is
// a Linux executable for the guest's architecture.
func (d *Driver) agentPath() (string, error) {
	if d.opts.AgentPath != "" {
		return d.opts.AgentPath, nil
	}
	if p := os.Getenv(AgentEnv); p != "" {
		return p, nil
	}
	arch := GoArch(d.opts.Arch)
	var exes []string
	if exe, err := os.Executable(); err == nil {
		exes = append(exes, exe)
		if real, err := filepath.EvalSymlinks(exe); err == nil && real != exe {
			exes = append(exes, real) // Homebrew's bin/berth is a link into the Cellar
		}
	}
	tried := agentCandidates(exes, arch)
	for _, p := range tried {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		err = checkAgentELF(f, arch)
		f.Close()
		if err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: no linux/%s build found (tried $%s, %s)", ErrAgentBinary, arch, AgentEnv, strings.Join(tried, ", "))
}

// agentCandidates lists where the agent for goarch may be, for each path of the running executable: a
// per-arch build beside it (make's bin/linux-<arch>/), Homebrew's libexec (bin/../libexec), the release
// archive's single agent beside berth, and finally bin/linux-<arch>/ below the working directory.
func agentCandidates(exes []string, goarch string) []string {
	rel := filepath.Join("linux-"+goarch, "berth-agent")
	var out []string
	for _, exe := range exes {
		dir := filepath.Dir(exe)
		out = append(out,
			filepath.Join(dir, rel),
			filepath.Join(dir, "..", "libexec", "berth-agent"),
			filepath.Join(dir, "berth-agent"),
		)
	}
	return append(out, filepath.Join("bin", rel))
}

// copyFile copies src to dst atomically with mode; checkELF verifies src is a linux/goarch executable.
func copyFile(src, dst string, mode os.FileMode, checkELF bool, goarch string) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer f.Close()
	if checkELF {
		if err := checkAgentELF(f, goarch); err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
	}
	if err := writeFileAtomic(dst, f, mode); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

// writeFileAtomic writes r to a temporary file next to path, then renames it over path.
func writeFileAtomic(path string, r io.Reader, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }
