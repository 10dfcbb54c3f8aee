//go:build windows

package hcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/Microsoft/hcsshim"
	"github.com/Microsoft/hcsshim/pkg/ociwclayer"
)

// windowsRuntime drives HCS (schema v1 documents through hcsshim's public API) and HNS (v1 endpoints).
type windowsRuntime struct {
	info    hcsshim.DriverInfo
	network string
	log     *slog.Logger
}

func newRuntime(cfg RuntimeConfig) (Runtime, error) {
	if cfg.LayerRoot == "" {
		return nil, fmt.Errorf("%w: no layer root", ErrInvalidConfig)
	}
	if cfg.Network == "" {
		cfg.Network = NetworkNAT
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Flavour 1 is the filter driver (windowsfilter), as dockerd uses it.
	return &windowsRuntime{info: hcsshim.DriverInfo{HomeDir: cfg.LayerRoot, Flavour: 1}, network: cfg.Network, log: log}, nil
}

// PrepareStorage creates the scratch layer (once) and activates and mounts it over the image's layers.
func (r *windowsRuntime) PrepareStorage(id string, layerFolders []string) (Storage, error) {
	exists, err := hcsshim.LayerExists(r.info, id)
	if err != nil {
		return Storage{}, fmt.Errorf("scratch layer %s: %w", id, err)
	}
	if !exists {
		if err := hcsshim.CreateScratchLayer(r.info, id, "", layerFolders); err != nil {
			return Storage{}, fmt.Errorf("create scratch layer %s: %w", id, err)
		}
	}
	if err := hcsshim.ActivateLayer(r.info, id); err != nil {
		return Storage{}, fmt.Errorf("activate scratch layer %s: %w", id, err)
	}
	if err := hcsshim.PrepareLayer(r.info, id, layerFolders); err != nil {
		_ = hcsshim.DeactivateLayer(r.info, id)
		return Storage{}, fmt.Errorf("prepare scratch layer %s: %w", id, err)
	}
	vol, err := hcsshim.GetLayerMountPath(r.info, id)
	if err != nil {
		_ = r.ReleaseStorage(id)
		return Storage{}, fmt.Errorf("mount path of scratch layer %s: %w", id, err)
	}
	st := Storage{ScratchFolder: filepath.Join(r.info.HomeDir, id), VolumePath: vol}
	for _, dir := range layerFolders {
		g, err := hcsshim.NameToGuid(filepath.Base(dir))
		if err != nil {
			_ = r.ReleaseStorage(id)
			return Storage{}, fmt.Errorf("layer id of %s: %w", dir, err)
		}
		st.Layers = append(st.Layers, Layer{ID: g.ToString(), Path: dir})
	}
	return st, nil
}

// ReleaseStorage unmounts and deactivates the scratch layer.
func (r *windowsRuntime) ReleaseStorage(id string) error {
	return errors.Join(
		wrapf(hcsshim.UnprepareLayer(r.info, id), "unprepare scratch layer %s", id),
		wrapf(hcsshim.DeactivateLayer(r.info, id), "deactivate scratch layer %s", id),
	)
}

// DestroyStorage removes the scratch layer, if it exists.
func (r *windowsRuntime) DestroyStorage(id string) error {
	exists, err := hcsshim.LayerExists(r.info, id)
	if err != nil || !exists {
		return wrapf(err, "scratch layer %s", id)
	}
	return wrapf(hcsshim.DestroyLayer(r.info, id), "destroy scratch layer %s", id)
}

// CreateEndpoint creates an endpoint on the NAT network with the port mappings as NAT policies.
func (r *windowsRuntime) CreateEndpoint(id string, policies []NatPolicy) (string, error) {
	nw, err := hcsshim.GetHNSNetworkByName(r.network)
	if err != nil {
		return "", fmt.Errorf("hns network %s: %w", r.network, err)
	}
	ep := &hcsshim.HNSEndpoint{Name: id, VirtualNetwork: nw.Id}
	for _, p := range policies {
		b, err := json.Marshal(p)
		if err != nil {
			return "", fmt.Errorf("nat policy: %w", err)
		}
		ep.Policies = append(ep.Policies, b)
	}
	created, err := ep.Create()
	if err != nil {
		return "", fmt.Errorf("create hns endpoint for %s: %w", id, err)
	}
	return created.Id, nil
}

// DeleteEndpoint deletes an endpoint.
func (r *windowsRuntime) DeleteEndpoint(endpointID string) error {
	ep, err := hcsshim.GetHNSEndpointByID(endpointID)
	if err != nil {
		return fmt.Errorf("hns endpoint %s: %w", endpointID, err)
	}
	if _, err := ep.Delete(); err != nil {
		return fmt.Errorf("delete hns endpoint %s: %w", endpointID, err)
	}
	return nil
}

// AllocatePort asks the host for a free port (it may be taken again before HNS binds it, as with dockerd).
func (r *windowsRuntime) AllocatePort(proto string) (uint16, error) {
	if proto == "udp" {
		c, err := net.ListenPacket("udp", ":0")
		if err != nil {
			return 0, fmt.Errorf("allocate udp port: %w", err)
		}
		defer c.Close()
		return uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
	}
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, fmt.Errorf("allocate tcp port: %w", err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port), nil
}

// Run creates and starts the compute system, then its first process.
func (r *windowsRuntime) Run(doc ContainerDocument, proc ProcessConfig) (Task, error) {
	cfg := &hcsshim.ContainerConfig{
		SystemType:                  doc.SystemType,
		Name:                        doc.Name,
		Owner:                       doc.Owner,
		VolumePath:                  doc.VolumePath,
		IgnoreFlushesDuringBoot:     doc.IgnoreFlushesDuringBoot,
		LayerFolderPath:             doc.LayerFolderPath,
		ProcessorCount:              doc.ProcessorCount,
		ProcessorWeight:             doc.ProcessorWeight,
		ProcessorMaximum:            doc.ProcessorMaximum,
		MemoryMaximumInMB:           doc.MemoryMaximumInMB,
		HostName:                    doc.HostName,
		HvPartition:                 doc.HvPartition,
		EndpointList:                doc.EndpointList,
		AllowUnqualifiedDNSQuery:    doc.AllowUnqualifiedDNSQuery,
		TerminateOnLastHandleClosed: doc.TerminateOnLastHandleClosed,
	}
	for _, l := range doc.Layers {
		cfg.Layers = append(cfg.Layers, hcsshim.Layer{ID: l.ID, Path: l.Path})
	}
	for _, m := range doc.MappedDirectories {
		cfg.MappedDirectories = append(cfg.MappedDirectories, hcsshim.MappedDir{
			HostPath: m.HostPath, ContainerPath: m.ContainerPath, ReadOnly: m.ReadOnly, CreateInUtilityVM: m.CreateInUtilityVM,
		})
	}
	if doc.HvRuntime != nil {
		cfg.HvRuntime = &hcsshim.HvRuntime{ImagePath: doc.HvRuntime.ImagePath}
	}
	sys, err := hcsshim.CreateContainer(doc.Name, cfg)
	if err != nil {
		return nil, fmt.Errorf("create compute system %s: %w", doc.Name, err)
	}
	if err := sys.Start(); err != nil {
		terminate(sys)
		return nil, fmt.Errorf("start compute system %s: %w", doc.Name, err)
	}
	p, err := startProcess(sys, proc)
	if err != nil {
		terminate(sys)
		return nil, fmt.Errorf("start process in %s: %w", doc.Name, err)
	}
	return &windowsTask{sys: sys, init: p}, nil
}

// startProcess creates a process in sys with the pipes proc asks for, and takes its stdio.
func startProcess(sys hcsshim.Container, proc ProcessConfig) (*windowsProcess, error) {
	p, err := sys.CreateProcess(&hcsshim.ProcessConfig{
		CommandLine:      proc.CommandLine,
		User:             proc.User,
		WorkingDirectory: proc.WorkingDirectory,
		Environment:      proc.Environment,
		EmulateConsole:   proc.EmulateConsole,
		CreateStdInPipe:  proc.CreateStdInPipe,
		CreateStdOutPipe: proc.CreateStdOutPipe,
		CreateStdErrPipe: proc.CreateStdErrPipe,
		ConsoleSize:      proc.ConsoleSize,
	})
	if err != nil {
		return nil, err
	}
	stdin, stdout, stderr, err := p.Stdio()
	if err != nil {
		_ = p.Kill()
		_ = p.Close()
		return nil, fmt.Errorf("stdio of process %d: %w", p.Pid(), err)
	}
	wp := &windowsProcess{proc: p}
	// Keep absent streams as nil interfaces.
	if stdin != nil {
		wp.stdin = &stdinCloser{pipe: stdin, proc: p}
	}
	if stdout != nil {
		wp.stdout = stdout
	}
	if stderr != nil {
		wp.stderr = stderr
	}
	return wp, nil
}

// stdinCloser is a process's stdin pipe whose Close also tells HCS the input has ended (closing the
// pipe alone does not close HCS's end).
type stdinCloser struct {
	pipe io.WriteCloser
	proc hcsshim.Process
	once sync.Once
	err  error
}

func (s *stdinCloser) Write(p []byte) (int, error) { return s.pipe.Write(p) }

func (s *stdinCloser) Close() error {
	s.once.Do(func() {
		err := s.pipe.Close()
		if cerr := s.proc.CloseStdin(); cerr != nil && !hcsshim.IsAlreadyClosed(cerr) && !hcsshim.IsAlreadyStopped(cerr) && !hcsshim.IsNotExist(cerr) {
			err = errors.Join(err, cerr)
		}
		s.err = wrapf(err, "close stdin of process %d", s.proc.Pid())
	})
	return s.err
}

// terminate ends sys and releases it (best effort: used on failure paths).
func terminate(sys hcsshim.Container) {
	if err := sys.Terminate(); hcsshim.IsPending(err) {
		_ = sys.WaitTimeout(30 * time.Second)
	}
	_ = sys.Close()
}

// windowsProcess is a process in a compute system with the streams HCS created for it.
type windowsProcess struct {
	proc   hcsshim.Process
	stdin  io.WriteCloser
	stdout io.Reader
	stderr io.Reader
}

var _ Process = (*windowsProcess)(nil)

func (p *windowsProcess) Pid() int { return p.proc.Pid() }

func (p *windowsProcess) Stdio() (io.WriteCloser, io.Reader, io.Reader) {
	return p.stdin, p.stdout, p.stderr
}

func (p *windowsProcess) Wait() (int, error) {
	if err := p.proc.Wait(); err != nil {
		return -1, fmt.Errorf("wait for process %d: %w", p.proc.Pid(), err)
	}
	code, err := p.proc.ExitCode()
	if err != nil {
		return -1, fmt.Errorf("exit code of process %d: %w", p.proc.Pid(), err)
	}
	return code, nil
}

// Resize sets the console size; HCS takes width first.
func (p *windowsProcess) Resize(height, width uint16) error {
	return wrapf(p.proc.ResizeConsole(width, height), "resize console of process %d", p.proc.Pid())
}

// Kill terminates the process (HCS's TerminateProcess); it does not wait.
func (p *windowsProcess) Kill() error {
	err := p.proc.Kill()
	if err == nil || hcsshim.IsAlreadyStopped(err) || hcsshim.IsNotExist(err) || hcsshim.IsAlreadyClosed(err) {
		return nil
	}
	return fmt.Errorf("kill process %d: %w", p.proc.Pid(), err)
}

// Close releases the process handle and the pipes we hold (a copy still reading an output pipe ends).
func (p *windowsProcess) Close() error {
	var errs []error
	if p.stdin != nil {
		errs = append(errs, p.stdin.Close())
	}
	for _, r := range []io.Reader{p.stdout, p.stderr} {
		if c, ok := r.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	errs = append(errs, wrapf(p.proc.Close(), "close process %d", p.proc.Pid()))
	return errors.Join(errs...)
}

// windowsTask is a running compute system and its first process.
type windowsTask struct {
	sys  hcsshim.Container
	init *windowsProcess
}

var _ Task = (*windowsTask)(nil)

func (t *windowsTask) Pid() int { return t.init.Pid() }

func (t *windowsTask) Stdio() (io.WriteCloser, io.Reader, io.Reader) { return t.init.Stdio() }

func (t *windowsTask) Wait() (int, error) { return t.init.Wait() }

// Shutdown asks HCS for a clean shutdown (CTRL_SHUTDOWN_EVENT to the container's processes), waits up to
// timeout, and terminates the compute system if it is still running.
func (t *windowsTask) Shutdown(timeout time.Duration) error {
	err := t.sys.Shutdown()
	if hcsshim.IsPending(err) {
		err = t.sys.WaitTimeout(timeout)
	}
	if err == nil || hcsshim.IsAlreadyStopped(err) || hcsshim.IsNotExist(err) {
		return nil
	}
	return t.Terminate()
}

func (t *windowsTask) Terminate() error {
	err := t.sys.Terminate()
	if hcsshim.IsPending(err) {
		err = t.sys.Wait()
	}
	if err == nil || hcsshim.IsAlreadyStopped(err) || hcsshim.IsNotExist(err) || hcsshim.IsAlreadyClosed(err) {
		return nil
	}
	return fmt.Errorf("terminate compute system: %w", err)
}

func (t *windowsTask) Resize(height, width uint16) error { return t.init.Resize(height, width) }

// Exec starts another process in the compute system (docker exec).
func (t *windowsTask) Exec(proc ProcessConfig) (Process, error) {
	p, err := startProcess(t.sys, proc)
	if err != nil {
		return nil, fmt.Errorf("exec %q: %w", proc.CommandLine, err)
	}
	return p, nil
}

func (t *windowsTask) Close() error {
	return errors.Join(t.init.Close(), wrapf(t.sys.Close(), "close compute system"))
}

// importLayer imports a layer tar with ociwclayer.
func importLayer(ctx context.Context, r io.Reader, dir string, parentDirs []string) (int64, error) {
	n, err := ociwclayer.ImportLayerFromTar(ctx, r, dir, parentDirs)
	if err != nil {
		return 0, fmt.Errorf("import layer into %s: %w", dir, err)
	}
	return n, nil
}

// wrapf wraps a non-nil err with context.
func wrapf(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}
