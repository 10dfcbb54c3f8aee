package hcs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/guestagent/engine"
	"github.com/berth-dev/berth/guestagent/runtime/container"
	"github.com/berth-dev/berth/guestagent/runtime/jsonlog"
)

// Service is the engine's ContainerService for Windows containers. Its bookkeeping (records, state, waits,
// events, logs, attach and exec streams) is plain Go and builds everywhere; what touches Windows (layers, HNS endpoints, compute
// systems) goes through a Runtime, which runtime_windows.go implements with hcsshim. Containers live as
// long as the Service: HCS terminates a compute system when its last handle closes.
type Service struct {
	cfg ServiceConfig
	rt  Runtime
	log *slog.Logger

	mu     sync.Mutex
	byID   map[string]*ctr
	subs   map[chan container.Event]struct{}
	closed bool
}

var _ engine.ContainerService = (*Service)(nil)

// ServiceConfig configures a Service.
type ServiceConfig struct {
	// Root holds one directory per container (its json-file log).
	Root string
	// Isolation is IsolationProcess (default) or IsolationHyperV for every container.
	Isolation string
	// HostCPUs is the host's logical CPU count.
	HostCPUs int
	// AllowUNC allows UNC bind sources.
	AllowUNC bool
	// Images resolves image references.
	Images Images
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
}

// Images is what the Service needs of the image store.
type Images interface {
	// Resolve returns the image's ID, its config and its imported layer folders, topmost first.
	Resolve(ctx context.Context, ref string) (ResolvedImage, error)
}

// ResolvedImage is an image ready to run.
type ResolvedImage struct {
	ID           string
	Config       ImageConfig
	LayerFolders []string
}

// Runtime is the Windows side of the Service: storage, network and compute.
type Runtime interface {
	// PrepareStorage creates (if needed) and mounts container id's scratch layer over layerFolders.
	PrepareStorage(id string, layerFolders []string) (Storage, error)
	// ReleaseStorage unmounts the scratch layer (it keeps its contents).
	ReleaseStorage(id string) error
	// DestroyStorage removes the scratch layer.
	DestroyStorage(id string) error
	// CreateEndpoint creates an HNS endpoint on the NAT network with policies; it returns its ID.
	CreateEndpoint(id string, policies []NatPolicy) (string, error)
	// DeleteEndpoint deletes an endpoint.
	DeleteEndpoint(endpointID string) error
	// AllocatePort picks a free host port for proto.
	AllocatePort(proto string) (uint16, error)
	// Run creates and starts the compute system of doc and its first process.
	Run(doc ContainerDocument, proc ProcessConfig) (Task, error)
}

// Task is a started container with its first process.
type Task interface {
	// Pid is the process's ID in the container.
	Pid() int
	// Stdio returns the process's streams, those ProcessConfig asked for; absent ones are nil. The
	// Service owns them: closing stdin ends the process's input.
	Stdio() (stdin io.WriteCloser, stdout, stderr io.Reader)
	// Wait waits for the process to exit and returns its exit code.
	Wait() (int, error)
	// Shutdown asks the compute system to shut down, waits up to timeout, then terminates it.
	Shutdown(timeout time.Duration) error
	// Terminate ends the compute system at once.
	Terminate() error
	// Resize sets the console size of a process with a console.
	Resize(height, width uint16) error
	// Exec starts another process in the running compute system.
	Exec(proc ProcessConfig) (Process, error)
	// Close releases the task's handles.
	Close() error
}

// Process is a process started by Task.Exec.
type Process interface {
	// Pid is the process's ID in the container.
	Pid() int
	// Stdio returns the process's streams, those ProcessConfig asked for; absent ones are nil. The
	// caller owns them: closing stdin ends the process's input.
	Stdio() (stdin io.WriteCloser, stdout, stderr io.Reader)
	// Wait waits for the process to exit and returns its exit code.
	Wait() (int, error)
	// Resize sets the console size of a process with a console.
	Resize(height, width uint16) error
	// Kill terminates the process without waiting for it.
	Kill() error
	// Close releases the process's handles; the process keeps running.
	Close() error
}

// ctr is one container.
type ctr struct {
	rec        container.Container
	image      ResolvedImage
	task       Task
	endpointID string
	stdio      *broker       // the first process's streams: log, attachers
	exited     chan struct{} // closed when the current run has ended; nil before the first start
	removed    chan struct{} // closed by Remove
}

// NewService returns a Service over rt.
func NewService(cfg ServiceConfig, rt Runtime) (*Service, error) {
	if cfg.Root == "" || cfg.Images == nil || rt == nil {
		return nil, fmt.Errorf("%w: root, images and runtime are required", ErrInvalidConfig)
	}
	if cfg.Isolation == "" {
		cfg.Isolation = IsolationProcess
	}
	if err := os.MkdirAll(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("hcs service root %s: %w", cfg.Root, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, rt: rt, log: log, byID: map[string]*ctr{}, subs: map[chan container.Event]struct{}{}}, nil
}

// Create records a container; storage and network are set up by Start.
func (s *Service) Create(ctx context.Context, opts container.CreateOptions) (*container.Container, error) {
	img, err := s.cfg.Images.Resolve(ctx, opts.Config.Image)
	if err != nil {
		return nil, fmt.Errorf("create container from %s: %w", opts.Config.Image, err)
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	// Validate everything pure now, so docker create fails like dockerd does.
	probe := PlanInput{ID: id, Options: opts, Image: img.Config, Storage: Storage{Layers: []Layer{{Path: `C:\probe`}}}, Isolation: s.cfg.Isolation, AllowUNC: s.cfg.AllowUNC}
	plan, err := MakePlan(probe)
	if err != nil {
		return nil, err
	}
	if _, err := NatPolicies(opts.HostConfig.PortBindings, func(string) (uint16, error) { return 1, nil }); err != nil {
		return nil, err
	}
	name := "/" + strings.TrimPrefix(opts.Name, "/")
	if name == "/" {
		name = "/" + id[:12]
	}
	dir := filepath.Join(s.cfg.Root, id)
	c := &ctr{
		rec: container.Container{
			ID: id, Name: name, Image: img.ID, ImageName: opts.Config.Image, Created: time.Now().UTC(),
			Config: opts.Config, HostConfig: opts.HostConfig,
			State:   container.State{Status: container.StatusCreated},
			LogPath: filepath.Join(dir, id+"-json.log"),
		},
		image:   img,
		stdio:   newBroker(opts.Config, s.log.With("container", id)),
		removed: make(chan struct{}),
	}
	c.rec.Path, c.rec.Args = splitCommand(plan.Process.CommandLine)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.byID {
		if o.rec.Name == name {
			return nil, fmt.Errorf("%w: the container name %q is already in use by container %q", container.ErrConflict, name, o.rec.ID)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create container %s: %w", id, err)
	}
	s.byID[id] = c
	s.emitLocked(c, "create")
	out := c.rec
	return &out, nil
}

// splitCommand splits a command line for display (Path and Args of inspect): at the first unquoted space.
func splitCommand(line string) (string, []string) {
	inQuote := false
	for i, r := range line {
		switch {
		case r == '"':
			inQuote = !inQuote
		case r == ' ' && !inQuote:
			return line[:i], []string{line[i+1:]}
		}
	}
	return line, nil
}

func newID() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("container id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// lookupLocked finds a container by full ID, name or unique ID prefix.
func (s *Service) lookupLocked(ref string) (*ctr, error) {
	if c, ok := s.byID[ref]; ok {
		return c, nil
	}
	name := "/" + strings.TrimPrefix(ref, "/")
	var found *ctr
	for _, c := range s.byID {
		if c.rec.Name == name {
			return c, nil
		}
		if ref != "" && strings.HasPrefix(c.rec.ID, ref) {
			if found != nil {
				return nil, fmt.Errorf("%w: %s", container.ErrAmbiguous, ref)
			}
			found = c
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: No such container: %s", container.ErrNotFound, ref)
	}
	return found, nil
}

// Get returns a copy of a container's record.
func (s *Service) Get(ref string) (*container.Container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.lookupLocked(ref)
	if err != nil {
		return nil, err
	}
	out := c.rec
	return &out, nil
}

// List lists containers (running ones unless opts.All), newest first, with Docker's id, name, status and
// label filters.
func (s *Service) List(opts container.ListOptions) ([]*container.Container, error) {
	for k := range opts.Filters {
		if k != "id" && k != "name" && k != "status" && k != "label" {
			return nil, fmt.Errorf("%w: invalid filter %q", container.ErrInvalid, k)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*container.Container
	for _, c := range s.byID {
		if !opts.All && !c.rec.State.Running && len(opts.Filters["status"]) == 0 {
			continue
		}
		if matches(&c.rec, opts.Filters) {
			rec := c.rec
			out = append(out, &rec)
		}
	}
	slices.SortFunc(out, func(a, b *container.Container) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// matches applies filters: values of one key are alternatives, keys must all match.
func matches(c *container.Container, filters map[string][]string) bool {
	for key, values := range filters {
		if len(values) == 0 {
			continue
		}
		ok := false
		for _, v := range values {
			switch key {
			case "id":
				ok = ok || strings.HasPrefix(c.ID, v)
			case "name":
				ok = ok || strings.Contains(strings.TrimPrefix(c.Name, "/"), strings.TrimPrefix(v, "/"))
			case "status":
				ok = ok || c.State.Status == v
			case "label":
				k, want, hasValue := strings.Cut(v, "=")
				got, present := c.Config.Labels[k]
				ok = ok || (present && (!hasValue || got == want))
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// Start sets up storage and network, creates the compute system and its first process, and logs its
// output to the container's json-file log.
func (s *Service) Start(ctx context.Context, ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.lookupLocked(ref)
	if err != nil {
		return err
	}
	if c.rec.State.Running {
		return fmt.Errorf("start container %s: %w", c.rec.ID, container.ErrNotModified)
	}
	if err := s.startLocked(c); err != nil {
		c.rec.State.Error = err.Error()
		return fmt.Errorf("start container %s: %w", c.rec.ID, err)
	}
	return nil
}

func (s *Service) startLocked(c *ctr) (err error) {
	id := c.rec.ID
	var undo []func()
	defer func() {
		if err != nil {
			for _, f := range slices.Backward(undo) {
				f()
			}
		}
	}()
	st, err := s.rt.PrepareStorage(id, c.image.LayerFolders)
	if err != nil {
		return err
	}
	undo = append(undo, func() { s.logErr("release storage", id, s.rt.ReleaseStorage(id)) })

	mode, _ := NetworkMode(c.rec.HostConfig.NetworkMode) // checked at create
	endpoint := ""
	if mode == NetworkNAT {
		policies, err := NatPolicies(c.rec.HostConfig.PortBindings, s.rt.AllocatePort)
		if err != nil {
			return err
		}
		if endpoint, err = s.rt.CreateEndpoint(id, policies); err != nil {
			return err
		}
		undo = append(undo, func() { s.logErr("delete endpoint", id, s.rt.DeleteEndpoint(endpoint)) })
	}
	plan, err := MakePlan(PlanInput{
		ID: id, Options: container.CreateOptions{Name: c.rec.Name, Config: c.rec.Config, HostConfig: c.rec.HostConfig},
		Image: c.image.Config, Storage: st, Isolation: s.cfg.Isolation, HostCPUs: s.cfg.HostCPUs,
		EndpointID: endpoint, AllowUNC: s.cfg.AllowUNC,
	})
	if err != nil {
		return err
	}
	logw, err := jsonlog.Create(c.rec.LogPath)
	if err != nil {
		return err
	}
	undo = append(undo, func() { logw.Close() })
	task, err := s.rt.Run(plan.Document, plan.Process)
	if err != nil {
		return err
	}
	// The broker owns the streams: stdin (with OpenStdin) stays open for attachers, and attachers that
	// were waiting for this start are bound before any output is read.
	stdin, stdout, stderr := task.Stdio()
	c.stdio.start(stdin)
	var copies sync.WaitGroup
	for name, r := range map[string]io.Reader{"stdout": stdout, "stderr": stderr} {
		if r == nil {
			continue
		}
		w := c.stdio.output(name, logw.Stream(name))
		copies.Go(func() {
			io.Copy(w, r)
			w.Close()
		})
	}
	c.task, c.endpointID = task, endpoint
	c.exited = make(chan struct{})
	c.rec.State = container.State{Status: container.StatusRunning, Running: true, Pid: task.Pid(), StartedAt: time.Now().UTC(), RestartCount: c.rec.State.RestartCount}
	s.emitLocked(c, "start")
	go s.reap(c, task, logw, &copies, c.exited)
	return nil
}

// reap waits for the first process to exit, then tears the run down and records the exit.
func (s *Service) reap(c *ctr, task Task, logw *jsonlog.Writer, copies *sync.WaitGroup, exited chan struct{}) {
	code, werr := task.Wait()
	id := c.rec.ID
	// The process is gone: end the compute system (HCS v1 does not stop it by itself), then the streams.
	s.logErr("terminate", id, task.Terminate())
	copies.Wait()
	c.stdio.end() // after all output is published: attachers end with the run
	s.logErr("close log", id, logw.Close())
	s.logErr("close task", id, task.Close())
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.endpointID != "" {
		s.logErr("delete endpoint", id, s.rt.DeleteEndpoint(c.endpointID))
		c.endpointID = ""
	}
	s.logErr("release storage", id, s.rt.ReleaseStorage(id))
	if werr != nil {
		code = -1
		c.rec.State.Error = werr.Error()
	}
	c.task = nil
	c.rec.State.Status, c.rec.State.Running, c.rec.State.Pid = container.StatusExited, false, 0
	c.rec.State.ExitCode, c.rec.State.FinishedAt = code, time.Now().UTC()
	s.emitLocked(c, "die", "exitCode", strconv.Itoa(code))
	close(exited)
	if c.rec.HostConfig.AutoRemove {
		go func() {
			if err := s.Remove(context.Background(), id, true, false); err != nil && !errors.Is(err, container.ErrNotFound) {
				s.log.Warn("auto-remove", "container", id, "err", err)
			}
		}()
	}
}

func (s *Service) logErr(op, id string, err error) {
	if err != nil {
		s.log.Warn(op, "container", id, "err", err)
	}
}

// Stop shuts the container down (Windows has no signals: HCS asks the processes to exit), and terminates
// it after timeout (default 10 s).
func (s *Service) Stop(ctx context.Context, ref string, timeout *time.Duration) error {
	s.mu.Lock()
	c, err := s.lookupLocked(ref)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if !c.rec.State.Running {
		s.mu.Unlock()
		return fmt.Errorf("stop container %s: %w", c.rec.ID, container.ErrNotModified)
	}
	task, exited := c.task, c.exited
	s.emitLocked(c, "kill", "signal", "15")
	s.mu.Unlock()
	d := 10 * time.Second
	if timeout != nil && *timeout >= 0 {
		d = *timeout
	} else if st := c.rec.Config.StopTimeout; st != nil && *st >= 0 {
		d = time.Duration(*st) * time.Second
	}
	if err := task.Shutdown(d); err != nil {
		s.logErr("shutdown", c.rec.ID, err)
		s.logErr("terminate", c.rec.ID, task.Terminate())
	}
	select {
	case <-exited:
	case <-ctx.Done():
		return fmt.Errorf("stop container %s: %w", c.rec.ID, ctx.Err())
	}
	s.mu.Lock()
	s.emitLocked(c, "stop")
	s.mu.Unlock()
	return nil
}

// Restart stops (if running) and starts the container.
func (s *Service) Restart(ctx context.Context, ref string, timeout *time.Duration) error {
	if err := s.Stop(ctx, ref, timeout); err != nil && !errors.Is(err, container.ErrNotModified) {
		return err
	}
	s.mu.Lock()
	if c, err := s.lookupLocked(ref); err == nil {
		c.rec.State.RestartCount++
	}
	s.mu.Unlock()
	if err := s.Start(ctx, ref); err != nil {
		return err
	}
	s.mu.Lock()
	if c, err := s.lookupLocked(ref); err == nil {
		s.emitLocked(c, "restart")
	}
	s.mu.Unlock()
	return nil
}

// Kill terminates the container: Windows containers have no signals, so every signal terminates.
func (s *Service) Kill(ctx context.Context, ref string, sig syscall.Signal) error {
	s.mu.Lock()
	c, err := s.lookupLocked(ref)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if !c.rec.State.Running {
		s.mu.Unlock()
		return fmt.Errorf("kill container %s: %w: container %s is not running", c.rec.ID, container.ErrConflict, c.rec.ID)
	}
	task := c.task
	s.emitLocked(c, "kill", "signal", strconv.Itoa(int(sig)))
	s.mu.Unlock()
	if err := task.Terminate(); err != nil {
		return fmt.Errorf("kill container %s: %w", c.rec.ID, err)
	}
	return nil
}

// Wait delivers the exit of the container per condition (Docker's not-running, next-exit, removed).
func (s *Service) Wait(ctx context.Context, ref string, condition string) (<-chan container.WaitResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.lookupLocked(ref)
	if err != nil {
		return nil, err
	}
	var until <-chan struct{}
	switch condition {
	case "", container.WaitNotRunning:
		if c.rec.State.Running {
			until = c.exited
		}
	case container.WaitNextExit:
		if c.rec.State.Running {
			until = c.exited
		} else {
			// The next run's exit: wait for a start, then for its exit.
			return s.waitNextRunLocked(ctx, c), nil
		}
	case container.WaitRemoved:
		until = c.removed
	default:
		return nil, fmt.Errorf("wait for container %s: %w: invalid condition %q", ref, container.ErrInvalid, condition)
	}
	ch := make(chan container.WaitResult, 1)
	if until == nil {
		ch <- container.WaitResult{ExitCode: c.rec.State.ExitCode, Error: c.rec.State.Error}
		return ch, nil
	}
	go func() {
		select {
		case <-until:
			s.mu.Lock()
			ch <- container.WaitResult{ExitCode: c.rec.State.ExitCode, Error: c.rec.State.Error}
			s.mu.Unlock()
		case <-ctx.Done():
			ch <- container.WaitResult{Err: ctx.Err()}
		}
	}()
	return ch, nil
}

// waitNextRunLocked waits, through the event stream, for c's next die event.
func (s *Service) waitNextRunLocked(ctx context.Context, c *ctr) <-chan container.WaitResult {
	events := make(chan container.Event, 64)
	s.subs[events] = struct{}{}
	ch := make(chan container.WaitResult, 1)
	go func() {
		defer s.unsubscribe(events)
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					ch <- container.WaitResult{Err: ErrServiceClosed}
					return
				}
				if ev.ID == c.rec.ID && ev.Action == "die" {
					code, _ := strconv.Atoi(ev.Attributes["exitCode"])
					ch <- container.WaitResult{ExitCode: code}
					return
				}
			case <-ctx.Done():
				ch <- container.WaitResult{Err: ctx.Err()}
				return
			}
		}
	}()
	return ch
}

// Remove deletes a stopped container (a running one only with force, after terminating it), its scratch
// layer and its log.
func (s *Service) Remove(ctx context.Context, ref string, force, removeVolumes bool) error {
	s.mu.Lock()
	c, err := s.lookupLocked(ref)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if c.rec.State.Running {
		if !force {
			s.mu.Unlock()
			return fmt.Errorf("%w: cannot remove container %q: container is running: stop the container before removing or force remove", container.ErrConflict, strings.TrimPrefix(c.rec.Name, "/"))
		}
		task, exited := c.task, c.exited
		s.mu.Unlock()
		if err := task.Terminate(); err != nil {
			return fmt.Errorf("remove container %s: %w", c.rec.ID, err)
		}
		select {
		case <-exited:
		case <-ctx.Done():
			return fmt.Errorf("remove container %s: %w", c.rec.ID, ctx.Err())
		}
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	if _, ok := s.byID[c.rec.ID]; !ok {
		return nil // removed meanwhile (auto-remove)
	}
	if err := s.rt.DestroyStorage(c.rec.ID); err != nil {
		return fmt.Errorf("remove container %s: %w", c.rec.ID, err)
	}
	if err := os.RemoveAll(filepath.Dir(c.rec.LogPath)); err != nil {
		return fmt.Errorf("remove container %s: %w", c.rec.ID, err)
	}
	delete(s.byID, c.rec.ID)
	c.stdio.close()
	c.rec.State.Status = container.StatusRemoving
	s.emitLocked(c, "destroy")
	close(c.removed)
	return nil
}

// Resize sets the console size of a container started with a TTY.
func (s *Service) Resize(ctx context.Context, ref string, height, width uint16) error {
	s.mu.Lock()
	c, err := s.lookupLocked(ref)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	task := c.task
	s.mu.Unlock()
	if task == nil {
		return fmt.Errorf("resize container %s: %w", ref, container.ErrNotRunning)
	}
	return task.Resize(height, width)
}

// Logs reads the container's json-file log.
func (s *Service) Logs(ctx context.Context, ref string, opts container.LogsOptions, fn func(jsonlog.Entry) error) error {
	s.mu.Lock()
	c, err := s.lookupLocked(ref)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	path, done := c.rec.LogPath, c.exited
	s.mu.Unlock()
	if done == nil {
		closed := make(chan struct{})
		close(closed)
		done = closed
	}
	both := opts.Stdout == opts.Stderr
	err = jsonlog.Read(ctx, path, jsonlog.ReadOptions{Tail: opts.Tail, Since: opts.Since, Until: opts.Until, Follow: opts.Follow, Done: done},
		func(e jsonlog.Entry) error {
			if both || (opts.Stdout && e.Stream == "stdout") || (opts.Stderr && e.Stream == "stderr") {
				return fn(e)
			}
			return nil
		})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Attach attaches streams to the container's first process: its output from now on (the engine replays
// the log itself for logs=1) and, with OpenStdin, input. To a running container it attaches now;
// otherwise at the next start, before the process runs (docker run's attach-then-start). The attachment
// ends with the run, when the client is gone, or on Close, which leaves the container running.
func (s *Service) Attach(ctx context.Context, ref string, opts container.AttachOptions) (container.AttachSession, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.lookupLocked(ref)
	if err != nil {
		return nil, err
	}
	a, err := c.stdio.attach(opts)
	if err != nil {
		return nil, fmt.Errorf("attach to container %s: %w", c.rec.ID, err)
	}
	return a, nil
}

// Exec starts a process in the running container (a new process in its compute system) with the
// container's environment, user and working directory unless opts override them, and wires its streams
// to opts'.
func (s *Service) Exec(ctx context.Context, ref string, opts container.ExecOptions) (container.ExecSession, error) {
	s.mu.Lock()
	c, err := s.lookupLocked(ref)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	id, task, cfg, img := c.rec.ID, c.task, c.rec.Config, c.image.Config
	s.mu.Unlock()
	if len(opts.Cmd) == 0 {
		return nil, fmt.Errorf("exec in container %s: %w: no command", id, container.ErrInvalid)
	}
	if task == nil {
		return nil, fmt.Errorf("exec in container %s: %w", id, container.ErrNotRunning)
	}
	pc, err := execProcessConfig(cfg, img, opts)
	if err != nil {
		return nil, fmt.Errorf("exec in container %s: %w", id, err)
	}
	proc, err := task.Exec(pc)
	if err != nil {
		s.mu.Lock()
		stopped := c.task != task
		s.mu.Unlock()
		if stopped {
			return nil, fmt.Errorf("exec in container %s: %w", id, container.ErrNotRunning)
		}
		return nil, fmt.Errorf("exec in container %s: %w", id, err)
	}
	s.mu.Lock()
	if c.task != task {
		// The container stopped meanwhile: its compute system takes the process with it.
		s.mu.Unlock()
		s.logErr("kill exec", id, proc.Kill())
		s.logErr("close exec", id, proc.Close())
		return nil, fmt.Errorf("exec in container %s: %w", id, container.ErrNotRunning)
	}
	s.emitLocked(c, "exec_start", "execPid", strconv.Itoa(proc.Pid()))
	s.mu.Unlock()
	log := s.log.With("container", id)
	return runExec(proc, opts, log, func(code int, err error) {
		if err != nil {
			log.Debug("wait for exec", "err", err)
		}
		s.mu.Lock()
		s.emitLocked(c, "exec_die", "exitCode", strconv.Itoa(code))
		s.mu.Unlock()
	}), nil
}

// Subscribe returns a channel of container events and a function that ends the subscription.
func (s *Service) Subscribe() (<-chan container.Event, func()) {
	ch := make(chan container.Event, 256)
	s.mu.Lock()
	if s.closed {
		close(ch)
	} else {
		s.subs[ch] = struct{}{}
	}
	s.mu.Unlock()
	return ch, func() { s.unsubscribe(ch) }
}

func (s *Service) unsubscribe(ch chan container.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.subs[ch]; ok {
		delete(s.subs, ch)
		close(ch)
	}
}

// emitLocked publishes an event about c to every subscriber that has room (a slow one misses events).
func (s *Service) emitLocked(c *ctr, action string, extra ...string) {
	attrs := map[string]string{"name": strings.TrimPrefix(c.rec.Name, "/"), "image": c.rec.ImageName}
	maps.Copy(attrs, c.rec.Config.Labels)
	for i := 0; i+1 < len(extra); i += 2 {
		attrs[extra[i]] = extra[i+1]
	}
	ev := container.Event{Action: action, ID: c.rec.ID, Time: time.Now(), Attributes: attrs}
	for ch := range s.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// ErrServiceClosed: the Service was closed.
var ErrServiceClosed = errors.New("hcs: service closed")

// Close terminates every running container, waits for them, and ends subscriptions.
func (s *Service) Close() error {
	s.mu.Lock()
	var running []chan struct{}
	for _, c := range s.byID {
		if c.task != nil {
			s.logErr("terminate", c.rec.ID, c.task.Terminate())
			running = append(running, c.exited)
		}
	}
	s.mu.Unlock()
	for _, ch := range running {
		<-ch
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, c := range s.byID {
		c.stdio.close() // attachers waiting for a start that will not come
	}
	for ch := range s.subs {
		delete(s.subs, ch)
		close(ch)
	}
	return nil
}
