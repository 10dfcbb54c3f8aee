package qemu

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/berth-dev/berth/hostshim/daemon"
	"github.com/berth-dev/berth/platform"
	"github.com/berth-dev/berth/vmimage"
	"github.com/berth-dev/berth/vmimage/initramfs"
	"github.com/berth-dev/berth/vmimage/instance"
)

// Timeouts of the driver.
const (
	stopGrace    = 30 * time.Second // the guest stops the engine (≤ 12 s) and containers (≤ 7 s) first
	quitGrace    = 5 * time.Second
	probeTimeout = 5 * time.Second // Status's handshake
	// Start's readiness probes: one every probeEvery and one whenever the serial console grew (looked at
	// every consoleEvery, at most one probe per consoleGap), each bounded by readyProbe, at most maxProbes
	// at once. The bound is loose on purpose: a probe sent before the guest's network is up hangs in QEMU's
	// user-mode network until its SYN is retransmitted, about 3 s later, and a tight bound would stop new
	// probes when the agent comes up (measured: up to 0.9 s lost with 40).
	readyProbe   = 3 * time.Second
	probeEvery   = 100 * time.Millisecond
	consoleEvery = 5 * time.Millisecond
	consoleGap   = 20 * time.Millisecond
	maxProbes    = 200
	logTailLines = 25
)

// errHostKeyMismatch: the endpoint answered with another host key than the instance's.
var errHostKeyMismatch = errors.New("qemu: the VM's SSH host key is not the instance's")

// Preflight checks that QEMU and the VM image are there.
func (d *Driver) Preflight() error {
	if _, err := d.qemuPath(); err != nil {
		return err
	}
	if _, err := d.imageDir(); err != nil {
		return fmt.Errorf("%w: %w", platform.ErrUnsupported, err)
	}
	return nil
}

func (d *Driver) qemuPath() (string, error) {
	if d.opts.QEMU != "" {
		return d.opts.QEMU, nil
	}
	bin, err := Binary(d.opts.Arch)
	if err != nil {
		return "", fmt.Errorf("%w: %w", platform.ErrUnsupported, err)
	}
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("%w: %s not found (install QEMU: apt-get install qemu-system, brew install qemu)", platform.ErrUnsupported, bin)
	}
	return p, nil
}

func (d *Driver) imageDir() (string, error) {
	exe, _ := os.Executable()
	return imageDir(d.opts.ImageDir, os.Getenv(ImageEnv), exe, d.opts.Arch, isFile)
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func (d *Driver) created() bool { return isFile(d.p.disk) }

// Create makes the data disk (sparse raw, ext4 when mkfs.ext4 is available).
func (d *Driver) Create(ctx context.Context) error {
	if err := d.Preflight(); err != nil {
		return err
	}
	if d.created() {
		return nil
	}
	if err := os.MkdirAll(d.inst.Dir, 0o700); err != nil {
		return fmt.Errorf("qemu create %s: %w", d.inst.Name, err)
	}
	size := int64(d.opts.DiskSizeGiB)
	if size <= 0 {
		size = DefaultDiskSizeGiB
	}
	tmp := d.p.disk + ".tmp"
	if err := makeDisk(ctx, tmp, size<<30); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("qemu create %s: %w", d.inst.Name, err)
	}
	if err := os.Rename(tmp, d.p.disk); err != nil {
		return fmt.Errorf("qemu create %s: %w", d.inst.Name, err)
	}
	return nil
}

// growDisk enlarges the data disk to Options.DiskSizeGiB when that is larger (never shrinks it); the guest
// grows its filesystem to match at boot.
func (d *Driver) growDisk() error {
	if d.opts.DiskSizeGiB <= 0 {
		return nil
	}
	st, err := os.Stat(d.p.disk)
	if err != nil {
		return err
	}
	if want := int64(d.opts.DiskSizeGiB) << 30; want > st.Size() {
		d.progress("growing the data disk to %d GiB", d.opts.DiskSizeGiB)
		if err := os.Truncate(d.p.disk, want); err != nil {
			return fmt.Errorf("grow data disk: %w", err)
		}
	}
	return nil
}

// mkfsCandidates are where e2fsprogs' mkfs.ext4 lives when not on PATH (sbin, Homebrew's keg-only e2fsprogs).
var mkfsCandidates = []string{"/sbin/mkfs.ext4", "/usr/sbin/mkfs.ext4",
	"/opt/homebrew/opt/e2fsprogs/sbin/mkfs.ext4", "/usr/local/opt/e2fsprogs/sbin/mkfs.ext4"}

// makeDisk creates a sparse raw image of size bytes and formats it ext4 if mkfs.ext4 is available.
func makeDisk(ctx context.Context, path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fmt.Errorf("size data disk: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		for _, c := range mkfsCandidates {
			if isFile(c) {
				mkfs, err = c, nil
				break
			}
		}
	}
	if err != nil {
		// The guest formats it (see the package documentation).
		return nil
	}
	out, err := exec.CommandContext(ctx, mkfs, mkfsArgs(path)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", mkfs, err, bytes.TrimSpace(out))
	}
	return nil
}

// mkfsArgs formats a file image without asking, labelled, with no reserved blocks (the disk holds only
// berth's data) and the inode tables initialised lazily by the guest kernel.
func mkfsArgs(path string) []string {
	return []string{"-F", "-q", "-L", "berth-data", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1", path}
}

// Start boots the VM unless it runs and waits until the agent's SSH endpoint shows the pinned host key.
func (d *Driver) Start(ctx context.Context) error {
	if !d.created() {
		return fmt.Errorf("qemu start %s: %w", d.inst.Name, platform.ErrNotCreated)
	}
	hostKey, err := d.hostPublicKey()
	if err != nil {
		return fmt.Errorf("qemu start %s: %w", d.inst.Name, err)
	}
	if p, err := daemon.ReadPIDFile(d.p.pid); err == nil {
		st, err := d.readState()
		if err != nil {
			return fmt.Errorf("qemu start %s: %w", d.inst.Name, err)
		}
		return d.waitReady(ctx, p, nil, st.SSHPort, hostKey)
	}
	if err := d.cleanup(); err != nil {
		return fmt.Errorf("qemu start %s: %w", d.inst.Name, err)
	}
	accel := d.opts.Accel
	if accel == "" {
		accel = os.Getenv(AccelEnv)
	}
	auto := accel == ""
	broken := ""
	if auto {
		accel = ChooseAccel(runtime.GOOS, runtime.GOARCH, d.opts.Arch, kvmUsable())
		broken = filepath.Join(d.p.dir, "accel-"+accel+".broken")
		if _, err := os.Stat(broken); err == nil && accel != AccelTCG {
			// This instance's last boot found the accelerator unusable: do
			// not pay for the failed attempt again.
			d.progress("%s failed here before; using TCG (remove %s to try it again)", accel, broken)
			accel = AccelTCG
		}
	}
	err = d.boot(ctx, accel, hostKey)
	if auto && accel != AccelTCG && errors.Is(err, errEarlyExit) {
		// /dev/kvm opens but QEMU cannot run a guest on it (nested virtualisation without the CPU
		// features QEMU sets up, for one): fall back to TCG.
		why := firstLine(tail(d.p.qemuLog, 1))
		d.progress("%s did not work (%v); retrying with TCG", accel, why)
		if err := d.cleanup(); err != nil {
			return fmt.Errorf("qemu start %s: %w", d.inst.Name, err)
		}
		if err = d.boot(ctx, AccelTCG, hostKey); err == nil {
			_ = os.WriteFile(broken, []byte(why+"\n"), 0o600)
		}
	}
	return err
}

// errEarlyExit: QEMU exited before the guest wrote anything to its console.
var errEarlyExit = errors.New("QEMU exited before the guest started")

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// boot starts QEMU with accel and waits for the agent.
func (d *Driver) boot(ctx context.Context, accel string, hostKey ssh.PublicKey) error {
	qemu, err := d.qemuPath()
	if err != nil {
		return fmt.Errorf("qemu start %s: %w", d.inst.Name, err)
	}
	img, err := d.imageDir()
	if err != nil {
		return fmt.Errorf("qemu start %s: %w", d.inst.Name, err)
	}
	vm, err := d.plan(img, accel)
	if err != nil {
		return fmt.Errorf("qemu start %s: %w", d.inst.Name, err)
	}
	if err := d.growDisk(); err != nil {
		return fmt.Errorf("qemu start %s: %w", d.inst.Name, err)
	}
	if err := d.writeInitrd(filepath.Join(img, vm.Initrd)); err != nil {
		return fmt.Errorf("qemu start %s: %w", d.inst.Name, err)
	}
	vm.Initrd = d.p.initrd
	if vm.SSHPort, err = freePort(); err != nil {
		return fmt.Errorf("qemu start %s: %w", d.inst.Name, err)
	}
	argv, err := Cmdline(vm)
	if err != nil {
		return fmt.Errorf("qemu start %s: %w", d.inst.Name, err)
	}
	logf, err := os.OpenFile(d.p.qemuLog, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("qemu start %s: %w", d.inst.Name, err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "%s %s\n", qemu, strings.Join(argv, " "))
	cmd := exec.Command(qemu, argv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = d.inst.Dir
	daemon.Detach(cmd)
	d.progress("booting the VM (%s, %s, %d CPUs, %d MiB)", vm.Arch, vm.Accel, vm.CPUs, vm.MemoryMiB)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("qemu start %s: %w", d.inst.Name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }() // reap it if it dies while this process lives
	pid := cmd.Process.Pid
	if err := daemon.WritePIDFile(d.p.pid, pid); err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("qemu start %s: %w", d.inst.Name, err)
	}
	b, _ := json.Marshal(state{SSHPort: vm.SSHPort, Accel: vm.Accel, Arch: vm.Arch})
	if err := os.WriteFile(d.p.state, b, 0o600); err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("qemu start %s: %w", d.inst.Name, err)
	}
	p, _ := daemon.Identify(pid)
	d.progress("waiting for the agent (SSH on 127.0.0.1:%d)", vm.SSHPort)
	t0 := time.Now()
	if err := d.waitReady(ctx, p, exited, vm.SSHPort, hostKey); err != nil {
		if p.Alive() {
			// A VM that did not come up is of no use; do not leave it running.
			_ = daemon.Terminate(context.Background(), p, quitGrace)
		}
		return err
	}
	d.progress("agent ready after %s", time.Since(t0).Round(100*time.Millisecond))
	// The RTC gave the guest the time to the second; make it exact.
	_ = d.SyncClock()
	return nil
}

// SyncClock sets the guest's clock to the host's through the control port: for after a resume or a long
// pause of QEMU, when the guest clock lags (Start does it once the agent is up).
func (d *Driver) SyncClock() error {
	if err := sendControl(d.p.control, fmt.Sprintf("time %d", time.Now().UnixNano())); err != nil {
		return fmt.Errorf("qemu sync clock %s: %w", d.inst.Name, err)
	}
	return nil
}

// plan is the VM to boot: the image's boot hints, this host's accelerator, the instance's resources.
func (d *Driver) plan(img, accel string) (VM, error) {
	m, err := vmimage.ReadManifest(img)
	if err != nil {
		return VM{}, err
	}
	if m.Arch != d.opts.Arch {
		return VM{}, fmt.Errorf("%w: image %s is for %s, not %s", ErrInvalid, img, m.Arch, d.opts.Arch)
	}
	vm := VM{
		Name: d.inst.Name, Arch: m.Arch, Accel: accel,
		CPUs: d.inst.CPUs, MemoryMiB: d.inst.MemoryMiB,
		Kernel: filepath.Join(img, m.Boot.Kernel), Initrd: m.Boot.Initramfs, Append: m.Boot.Cmdline,
		Disk: d.p.disk, DiskFormat: "raw",
		GuestSSHPort: guestSSHPort,
		Shares:       shareList(d.shareDirs()),
		QMP:          d.p.qmp, Control: d.p.control, Serial: d.p.serial, ControlName: controlPortName,
	}
	if vm.CPUs <= 0 {
		vm.CPUs = min(DefaultCPUs, runtime.NumCPU())
	}
	if vm.MemoryMiB <= 0 {
		vm.MemoryMiB = DefaultMemoryMiB
	}
	if accel == AccelTCG && vm.Arch == "amd64" {
		vm.TSCkHz = tscKHz()
	}
	return vm, nil
}

func (d *Driver) shareDirs() []string {
	if d.opts.Shares != nil {
		return d.opts.Shares
	}
	if home, err := os.UserHomeDir(); err == nil {
		return []string{home}
	}
	return nil
}

// instanceConfig is the guest's per-instance configuration.
func (d *Driver) instanceConfig() (instance.Config, error) {
	cfg := instance.Config{
		Name: d.inst.Name, CPUs: d.inst.CPUs, MemoryMiB: d.inst.MemoryMiB, DataDisk: guestDataDisk,
	}
	key, err := os.ReadFile(d.inst.HostKeyFile)
	if err != nil {
		return cfg, fmt.Errorf("host key: %w", err)
	}
	cfg.HostKey = key
	auth, err := os.ReadFile(d.inst.AuthorizedKeysFile)
	if err != nil {
		return cfg, fmt.Errorf("authorized keys: %w", err)
	}
	for _, l := range strings.Split(string(auth), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			cfg.AuthorizedKeys = append(cfg.AuthorizedKeys, l)
		}
	}
	for _, s := range shareList(d.shareDirs()) {
		guest := filepath.ToSlash(s.HostPath)
		if vol := filepath.VolumeName(s.HostPath); vol != "" {
			// C:\Users\me → /c/Users/me
			guest = "/" + strings.ToLower(strings.TrimSuffix(vol, ":")) + filepath.ToSlash(s.HostPath[len(vol):])
		}
		cfg.Shares = append(cfg.Shares, instance.Share{Tag: s.Tag, Type: "9p", HostPath: s.HostPath, GuestPath: guest, ReadOnly: s.ReadOnly})
	}
	if d.opts.Debug {
		cfg.Agent = []string{"--debug"}
	}
	return cfg, nil
}

// writeInitrd writes the base initramfs with the instance's config cpio appended (mode 0600: it holds
// the agent's host key). The result is kept for the next start while the base image (path, size, mtime)
// and the config cpio are the same: the base is ~26 MB uncompressed, and copying it would delay every
// start.
func (d *Driver) writeInitrd(base string) error {
	cfg, err := d.instanceConfig()
	if err != nil {
		return err
	}
	inst, err := instance.Archive(cfg)
	if err != nil {
		return err
	}
	bf, err := os.Open(base)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	defer bf.Close()
	st, err := bf.Stat()
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	stamp := initrdStamp(base, st.Size(), st.ModTime(), inst)
	if old, err := os.ReadFile(d.p.initrd + ".stamp"); err == nil && string(old) == stamp && isFile(d.p.initrd) {
		return nil
	}
	_ = os.Remove(d.p.initrd + ".stamp")
	tmp := d.p.initrd + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	if err := initramfs.Concat(f, bf, bytes.NewReader(inst)); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("initrd: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("initrd: %w", err)
	}
	if err := os.Rename(tmp, d.p.initrd); err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	_ = os.WriteFile(d.p.initrd+".stamp", []byte(stamp), 0o600)
	return nil
}

// initrdStamp identifies an instance initrd: the base initramfs by path, size and mtime, the config cpio
// by its hash.
func initrdStamp(base string, size int64, mtime time.Time, inst []byte) string {
	sum := sha256.Sum256(inst)
	return fmt.Sprintf("%s\n%d %d\n%s\n", base, size, mtime.UnixNano(), hex.EncodeToString(sum[:]))
}

// hostPublicKey is the public half of the agent's host key, which Start expects on the endpoint.
func (d *Driver) hostPublicKey() (ssh.PublicKey, error) {
	b, err := os.ReadFile(d.inst.HostKeyFile)
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("host key %s: %w", d.inst.HostKeyFile, err)
	}
	return s.PublicKey(), nil
}

// freePort picks a free TCP port on 127.0.0.1 for the SSH forward.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady probes the SSH endpoint until a key exchange shows the pinned host key, QEMU exits or ctx
// ends. Probes overlap: until the guest's network is up, user-mode networking accepts the host's
// connection and leaves it hanging, so waiting for each probe to time out would delay readiness. A probe
// starts every probeEvery and, between those, as soon as the serial console grows: the guest logs each
// boot step there, the engine's "ssh transport serving" among them, so the probe that succeeds usually
// starts within a few milliseconds of the listener (the console is only a hint; readiness is the
// handshake).
func (d *Driver) waitReady(ctx context.Context, p daemon.Process, exited <-chan struct{}, port int, key ssh.PublicKey) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the probes still in flight
	results := make(chan error, maxProbes)
	inflight := 0
	var lastLaunch time.Time
	launch := func() {
		if inflight >= maxProbes {
			return
		}
		inflight++
		lastLaunch = time.Now()
		go func() { results <- handshake(ctx, port, key, readyProbe) }()
	}
	launch()
	tick := time.NewTicker(consoleEvery)
	defer tick.Stop()
	lastAlive := time.Now()
	var consoleSize int64
	for {
		select {
		case err := <-results:
			inflight--
			if err == nil {
				return nil
			}
			if os.Getenv(DebugEnv) != "" {
				d.progress("probe: %v", err)
			}
			if errors.Is(err, errHostKeyMismatch) {
				return fmt.Errorf("qemu start %s: %w: %w", d.inst.Name, platform.ErrAgentFailed, err)
			}
		case now := <-tick.C:
			if st, err := os.Stat(d.p.serial); err == nil && st.Size() != consoleSize && now.Sub(lastLaunch) >= consoleGap {
				consoleSize = st.Size()
				launch()
			} else if now.Sub(lastLaunch) >= probeEvery {
				launch()
			}
			if now.Sub(lastAlive) < probeEvery {
				continue
			}
			lastAlive = now
			if !p.Alive() {
				if exited != nil {
					select {
					case <-exited:
					case <-time.After(200 * time.Millisecond):
					}
				}
				if st, err := os.Stat(d.p.serial); err != nil || st.Size() == 0 {
					return fmt.Errorf("qemu start %s: %w: %w\n%s", d.inst.Name, platform.ErrAgentFailed, errEarlyExit, d.logTails())
				}
				return fmt.Errorf("qemu start %s: %w: the VM stopped before the agent answered\n%s", d.inst.Name, platform.ErrAgentFailed, d.logTails())
			}
		case <-ctx.Done():
			return fmt.Errorf("qemu start %s: %w: no answer from the agent on 127.0.0.1:%d: %w\n%s", d.inst.Name, platform.ErrAgentFailed, port, ctx.Err(), d.logTails())
		}
	}
}

// logTails is the end of QEMU's own log and of the serial console, for error messages.
func (d *Driver) logTails() string {
	var b strings.Builder
	// The first line of qemu.log is QEMU's argv (written by Start): not part of the tail.
	if t := tail(d.p.qemuLog, 6); strings.Count(t, "\n") > 0 || (t != "" && !strings.Contains(t, " -name berth-")) {
		if strings.Contains(t, " -name berth-") {
			_, t, _ = strings.Cut(t, "\n")
		}
		fmt.Fprintf(&b, "qemu (%s):\n%s\n", d.p.qemuLog, t)
	}
	fmt.Fprintf(&b, "serial console (%s), last lines:\n%s", d.p.serial, tail(d.p.serial, logTailLines))
	return b.String()
}

// handshake runs an SSH key exchange with the endpoint and checks the host key; the missing client
// authentication then fails, which is expected (the driver holds no client key).
func handshake(ctx context.Context, port int, want ssh.PublicKey, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	var seen, mismatch bool
	cfg := &ssh.ClientConfig{
		User: "berth",
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			seen = true
			if !bytes.Equal(key.Marshal(), want.Marshal()) {
				mismatch = true
				return errHostKeyMismatch
			}
			return nil
		},
	}
	sc, _, _, err := ssh.NewClientConn(c, addr, cfg)
	if err == nil {
		sc.Close()
	}
	switch {
	case mismatch:
		return errHostKeyMismatch
	case seen:
		return nil
	case err == nil:
		return errors.New("ssh handshake without a host key")
	}
	return err
}

// Stop asks the guest to power off through the control port, then QMP quit, then kills QEMU.
func (d *Driver) Stop(ctx context.Context) error {
	p, err := daemon.ReadPIDFile(d.p.pid)
	if err != nil {
		return d.wrapCleanup("stop")
	}
	if err := sendControl(d.p.control, "poweroff"); err == nil && waitGone(ctx, p, stopGrace) {
		return d.wrapCleanup("stop")
	}
	if _, err := qmp(ctx, d.p.qmp, "quit"); err == nil && waitGone(ctx, p, quitGrace) {
		return d.wrapCleanup("stop")
	}
	if err := daemon.Terminate(ctx, p, quitGrace); err != nil {
		return fmt.Errorf("qemu stop %s: %w", d.inst.Name, err)
	}
	return d.wrapCleanup("stop")
}

func (d *Driver) wrapCleanup(op string) error {
	if err := d.cleanup(); err != nil {
		return fmt.Errorf("qemu %s %s: %w", op, d.inst.Name, err)
	}
	return nil
}

// cleanup removes the run-time files of a VM that is gone.
func (d *Driver) cleanup() error {
	for _, f := range []string{d.p.pid, d.p.state, d.p.qmp, d.p.control} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// waitGone polls until p has exited, ctx ends or d passes.
func waitGone(ctx context.Context, p daemon.Process, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for p.Alive() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// sendControl writes one line to the guest's control port.
func sendControl(sock, line string) error {
	c, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	_, err = io.WriteString(c, line+"\n")
	return err
}

// Delete stops the VM and removes the driver's files.
func (d *Driver) Delete(ctx context.Context) error {
	if err := d.Stop(ctx); err != nil {
		return err
	}
	for _, f := range []string{d.p.disk, d.p.disk + ".tmp", d.p.initrd, d.p.initrd + ".tmp", d.p.initrd + ".stamp", d.p.serial, d.p.qemuLog} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("qemu delete %s: %w", d.inst.Name, err)
		}
	}
	if dir := filepath.Dir(d.p.qmp); dir != d.inst.Dir {
		_ = os.Remove(dir)
	}
	return nil
}

// Status reads the pid file and asks QMP and the SSH endpoint.
func (d *Driver) Status(ctx context.Context) (platform.Status, error) {
	var st platform.Status
	if !d.created() {
		st.State = platform.StateNotCreated
		return st, nil
	}
	p, err := daemon.ReadPIDFile(d.p.pid)
	if err != nil {
		st.State = platform.StateStopped
		return st, nil
	}
	st.PID = p.PID
	vs, err := d.readState()
	if err != nil {
		st.State = platform.StateDegraded
		st.Notes = append(st.Notes, "QEMU runs but its state file is unreadable: "+err.Error())
		return st, nil
	}
	st.Endpoint = fmt.Sprintf("tcp:127.0.0.1:%d", vs.SSHPort)
	st.Notes = append(st.Notes, fmt.Sprintf("%s guest, %s", vs.Arch, vs.Accel))
	if raw, err := qmp(ctx, d.p.qmp, "query-status"); err == nil {
		var qs struct {
			Status string `json:"status"`
		}
		if json.Unmarshal(raw, &qs) == nil && qs.Status != "running" {
			st.State = platform.StateDegraded
			st.Notes = append(st.Notes, "QEMU reports the VM "+qs.Status)
			return st, nil
		}
	} else {
		st.Notes = append(st.Notes, "QMP: "+err.Error())
	}
	key, err := d.hostPublicKey()
	if err != nil {
		return st, err
	}
	if err := handshake(ctx, vs.SSHPort, key, probeTimeout); err != nil {
		st.State = platform.StateDegraded
		st.Notes = append(st.Notes, "the agent's SSH endpoint does not answer: "+err.Error())
		return st, nil
	}
	st.State = platform.StateRunning
	return st, nil
}

// Dial connects to the agent's SSH endpoint (the forwarded port on 127.0.0.1).
func (d *Driver) Dial(ctx context.Context) (net.Conn, error) {
	if _, err := daemon.ReadPIDFile(d.p.pid); err != nil {
		return nil, fmt.Errorf("qemu dial %s: %w", d.inst.Name, platform.ErrNotRunning)
	}
	vs, err := d.readState()
	if err != nil {
		return nil, fmt.Errorf("qemu dial %s: %w", d.inst.Name, err)
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(vs.SSHPort)))
	if err != nil {
		return nil, fmt.Errorf("qemu dial %s: %w", d.inst.Name, err)
	}
	return c, nil
}

// tail returns the last n lines of a file ("" if it cannot be read).
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
