package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/guestagent/cgroups"
	"github.com/berth-dev/berth/guestagent/image"
	"github.com/berth-dev/berth/guestagent/runtime/jsonlog"
	"github.com/berth-dev/berth/guestagent/runtime/shim"
	"github.com/berth-dev/berth/guestagent/runtime/specgen"
)

// Options configure a Manager.
type Options struct {
	Root    string       // container directories, e.g. /var/lib/berth/containers
	RunRoot string       // libct state root, e.g. /run/berth
	Images  *image.Store // resolves images and their layer directories
	Logger  *slog.Logger
	// CgroupParent is the cgroup below which containers are placed (relative
	// paths are below the agent's own cgroup); default "berth".
	CgroupParent string
	// ShimBinary is the executable re-executed as shim (and, by libct, as
	// container init); default: the running executable.
	ShimBinary string
	// ResolvConf and Hosts are the agent's files containers' ones derive
	// from; defaults /etc/resolv.conf and /etc/hosts.
	ResolvConf, Hosts string
	// Network connects containers to networks (usually a
	// *network.Manager). With one, every container but a "host" one gets a
	// persistent namespace (RunRoot/netns/<id>) attached to its networks,
	// kept across stop and start; nil gives each container a fresh, empty
	// namespace at every start.
	Network Network
}

// imageStore is what the manager needs of the image store.
type imageStore interface {
	Get(ctx context.Context, nameOrID string) (*image.Image, error)
	LayerDirs(ctx context.Context, id digest.Digest) ([]string, error)
}

// rootfsMounter mounts and unmounts container root filesystems.
type rootfsMounter interface {
	// Mount mounts an overlay of layers (top-most first) with upper and
	// work at target.
	Mount(layers []string, upper, work, target string) error
	// Unmount unmounts target; unmounting what is not mounted is no error.
	Unmount(target string) error
	// Mounted reports whether target is a mount point.
	Mounted(target string) (bool, error)
}

// shimLauncher starts a shim for a container directory holding shim.json
// and returns when the container is created (or failed to be).
type shimLauncher interface {
	Launch(ctx context.Context, dir string) (pid int, err error)
}

// deps are the manager's replaceable collaborators.
type deps struct {
	images   imageStore
	mounter  rootfsMounter
	launcher shimLauncher
	now      func() time.Time
	netns    netnsOps // zero: network.NewNetNS, DeleteNetNS and an nsfs check
}

// Manager manages containers. It is safe for concurrent use.
type Manager struct {
	root, runRoot string
	cgroupParent  string
	resolvConf    string
	hosts         string
	log           *slog.Logger
	d             deps
	net           Network  // nil: no network manager
	nsops         netnsOps // persistent network namespaces

	ctx    context.Context // ends at Close: bounds monitors
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	byID   map[string]*ctr
	names  map[string]string // "/name" → id
	subs   map[chan Event]struct{}
	closed bool
}

// ctr is a container's in-memory state. Fields other than op are guarded by
// Manager.mu.
type ctr struct {
	op sync.Mutex // serializes start, stop, restart and remove

	rec          *Container
	spec         *specs.Spec   // loaded from the bundle on demand
	gen          int           // incremented at every exit
	changed      chan struct{} // closed and replaced at every state change
	runDone      chan struct{} // closed when the current run ends
	manualStop   bool
	restartTimer *time.Timer
	restartDelay time.Duration
	removed      bool
	pending      []*Attachment
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Open opens the manager on opts.Root, restoring the containers recorded
// there and reconnecting to the shims of running ones.
func Open(opts Options) (*Manager, error) {
	if opts.Images == nil {
		return nil, fmt.Errorf("open container manager: %w: no image store", ErrInvalid)
	}
	binary := opts.ShimBinary
	if binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("open container manager: find own executable: %w", err)
		}
		binary = exe
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return open(opts, deps{
		images:   opts.Images,
		mounter:  newOverlayMounter(),
		launcher: &execLauncher{binary: binary, log: logger},
	})
}

func open(opts Options, d deps) (*Manager, error) {
	if opts.Root == "" || opts.RunRoot == "" {
		return nil, fmt.Errorf("open container manager: %w: Root and RunRoot are required", ErrInvalid)
	}
	if d.now == nil {
		d.now = time.Now
	}
	m := &Manager{
		root: opts.Root, runRoot: opts.RunRoot,
		cgroupParent: opts.CgroupParent, resolvConf: opts.ResolvConf, hosts: opts.Hosts,
		log: opts.Logger, d: d, net: opts.Network, nsops: d.netns,
		byID: map[string]*ctr{}, names: map[string]string{}, subs: map[chan Event]struct{}{},
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.cgroupParent == "" {
		m.cgroupParent = "berth"
	}
	if m.resolvConf == "" {
		m.resolvConf = "/etc/resolv.conf"
	}
	if m.hosts == "" {
		m.hosts = "/etc/hosts"
	}
	if m.nsops.create == nil {
		m.nsops = defaultNetNSOps
	}
	for _, dir := range []string{m.root, m.runRoot} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return nil, fmt.Errorf("open container manager: %w", err)
		}
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	entries, err := os.ReadDir(m.root)
	if err != nil {
		return nil, fmt.Errorf("open container manager: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || !isID(e.Name()) {
			continue
		}
		m.restore(e.Name())
	}
	return m, nil
}

func (m *Manager) dir(id string) string { return filepath.Join(m.root, id) }

// restore loads one container and reconnects to its shim.
func (m *Manager) restore(id string) {
	log := m.log.With("container", id)
	var rec Container
	b, err := os.ReadFile(filepath.Join(m.dir(id), "container.json"))
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	if err != nil || rec.ID != id {
		log.Warn("skipping unreadable container", "err", err)
		return
	}
	if rec.State.Status == StatusRemoving {
		log.Info("finishing interrupted removal")
		if err := m.destroyFiles(&rec); err != nil {
			log.Warn("finish removal", "err", err)
		}
		return
	}
	c := &ctr{rec: &rec, changed: make(chan struct{}), runDone: closedChan}
	m.byID[id] = c
	m.names[rec.Name] = id
	st := rec.State
	if !st.Running && !st.Paused {
		if st.Restarting {
			// The agent stopped during a restart backoff: restart now.
			c.restartTimer = time.AfterFunc(0, func() { m.policyRestart(c) })
		}
		return
	}
	client := &shim.Client{Dir: m.dir(id)}
	ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
	resp, err := client.State(ctx)
	cancel()
	if err == nil && (resp.Status == "running" || resp.Status == "created") {
		if resp.Status == "created" {
			// Created but never started: the agent died in between.
			_ = client.Kill(m.ctx, sigKILL, true)
		}
		log.Info("reconnected to running container", "pid", resp.Pid)
		c.runDone = make(chan struct{})
		m.monitor(c, client, closedChan)
		return
	}
	exit, rerr := shim.ReadExit(m.dir(id))
	if rerr != nil {
		if resp != nil && resp.Exit != nil {
			exit = resp.Exit
		} else {
			exit = &shim.Exit{ExitCode: 255, FinishedAt: m.d.now().UTC(), Error: "container's shim disappeared without recording its exit"}
		}
	}
	log.Info("container exited while the agent was away", "exitCode", exit.ExitCode)
	c.runDone = make(chan struct{})
	m.handleExit(c, exit)
}

// Close stops watching containers; running containers keep running and are
// reconnected by the next Open.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	var pending []*Attachment
	for _, c := range m.byID {
		if c.restartTimer != nil {
			c.restartTimer.Stop()
		}
		pending = append(pending, c.pending...)
		c.pending = nil
	}
	for ch := range m.subs {
		close(ch)
		delete(m.subs, ch)
	}
	m.mu.Unlock()
	for _, a := range pending {
		a.finish(fmt.Errorf("attach: %w: manager closed", ErrNotRunning))
	}
	m.cancel()
	m.wg.Wait()
	return nil
}

// ---- lookup ----

// lookup finds a container by full ID, name (with or without "/") or
// unique ID prefix. Called with m.mu held.
func (m *Manager) lookupLocked(ref string) (*ctr, error) {
	if ref == "" {
		return nil, fmt.Errorf("%w: empty container reference", ErrInvalid)
	}
	if c, ok := m.byID[ref]; ok {
		return c, nil
	}
	if id, ok := m.names["/"+strings.TrimPrefix(ref, "/")]; ok {
		return m.byID[id], nil
	}
	var found *ctr
	for id, c := range m.byID {
		if strings.HasPrefix(id, ref) {
			if found != nil {
				return nil, fmt.Errorf("container %s: %w", ref, ErrAmbiguous)
			}
			found = c
		}
	}
	if found == nil {
		return nil, fmt.Errorf("no such container: %s: %w", ref, ErrNotFound)
	}
	return found, nil
}

func (m *Manager) lookup(ref string) (*ctr, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lookupLocked(ref)
}

// Get returns a snapshot of the container named by ID, name or unique ID
// prefix.
func (m *Manager) Get(ref string) (*Container, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.lookupLocked(ref)
	if err != nil {
		return nil, err
	}
	return c.rec.clone(), nil
}

// List returns snapshots of the containers (running ones only unless
// opts.All), newest first.
func (m *Manager) List(opts ListOptions) ([]*Container, error) {
	if _, err := matchFilters(&Container{}, opts.Filters); err != nil {
		return nil, err // an unknown filter is an error even when nothing is listed
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Container
	for _, c := range m.byID {
		if !opts.All && !c.rec.State.Running && !c.rec.State.Restarting {
			if _, ok := opts.Filters["status"]; !ok {
				continue
			}
		}
		ok, err := matchFilters(c.rec, opts.Filters)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, c.rec.clone())
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// ImageInUse reports whether a container was created from image id (for
// image.Options.InUse).
func (m *Manager) ImageInUse(id digest.Digest) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.byID {
		if c.rec.Image == id.String() {
			return true
		}
	}
	return false
}

func (c *Container) clone() *Container {
	b, _ := json.Marshal(c)
	var out Container
	_ = json.Unmarshal(b, &out)
	return &out
}

// ---- persistence and notification (with m.mu held) ----

func (m *Manager) persistLocked(c *ctr) {
	if c.removed {
		return
	}
	if err := shim.WriteJSONAtomic(filepath.Join(m.dir(c.rec.ID), "container.json"), c.rec); err != nil {
		m.log.Error("persist container", "container", c.rec.ID, "err", err)
	}
}

func (c *ctr) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// ---- events ----

// Subscribe returns a channel of events from now on and a function that
// ends the subscription (closing the channel, as Close does). A subscriber
// that does not keep up (256 events behind) loses events.
func (m *Manager) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, 256)
	m.mu.Lock()
	if m.closed {
		close(ch)
	} else {
		m.subs[ch] = struct{}{}
	}
	m.mu.Unlock()
	return ch, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if _, ok := m.subs[ch]; ok {
			delete(m.subs, ch)
			close(ch)
		}
	}
}

// emitLocked publishes an event about c; extra are key, value pairs.
func (m *Manager) emitLocked(c *Container, action string, extra ...string) {
	attrs := map[string]string{"name": strings.TrimPrefix(c.Name, "/"), "image": c.ImageName}
	for k, v := range c.Config.Labels {
		attrs[k] = v
	}
	for i := 0; i+1 < len(extra); i += 2 {
		attrs[extra[i]] = extra[i+1]
	}
	ev := Event{Action: action, ID: c.ID, Time: m.d.now().UTC(), Attributes: attrs}
	for ch := range m.subs {
		select {
		case ch <- ev:
		default:
			m.log.Warn("event subscriber too slow; dropping event", "action", action)
		}
	}
}

func (m *Manager) emit(c *ctr, action string, extra ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.emitLocked(c.rec, action, extra...)
}

// ---- create ----

// Create creates a container: resolves the image, mounts the root
// filesystem, writes hostname, hosts and resolv.conf and the OCI bundle.
func (m *Manager) Create(ctx context.Context, opts CreateOptions) (*Container, error) {
	if opts.Config.Image == "" {
		return nil, fmt.Errorf("create container: %w: no image", ErrInvalid)
	}
	hc := opts.HostConfig
	if err := validateRestartPolicy(hc.RestartPolicy, hc.AutoRemove); err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	plan, err := planNetwork(hc.NetworkMode, opts.Networks, m.net != nil)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	var binds []specgen.Bind
	for _, s := range hc.Binds {
		b, err := parseBind(s)
		if err != nil {
			return nil, fmt.Errorf("create container: %w", err)
		}
		binds = append(binds, b)
	}
	if opts.Config.StopSignal != "" {
		if _, err := ParseSignal(opts.Config.StopSignal); err != nil {
			return nil, fmt.Errorf("create container: %w", err)
		}
	}
	var name string
	if opts.Name != "" {
		if name, err = normalizeName(opts.Name); err != nil {
			return nil, fmt.Errorf("create container: %w", err)
		}
	}
	img, err := m.d.images.Get(ctx, opts.Config.Image)
	if err != nil {
		if errors.Is(err, image.ErrNotFound) {
			return nil, fmt.Errorf("create container: no such image %s: %w: %w", opts.Config.Image, ErrNotFound, err)
		}
		return nil, fmt.Errorf("create container: image %s: %w", opts.Config.Image, err)
	}

	id := newID()
	// Reserve the name.
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, fmt.Errorf("create container: %w: manager closed", ErrConflict)
	}
	if name == "" {
		for i := 0; ; i++ {
			name = generateName(i)
			if _, taken := m.names[name]; !taken {
				break
			}
		}
	} else if other, taken := m.names[name]; taken {
		m.mu.Unlock()
		return nil, fmt.Errorf("create container: the container name %q is already in use by container %q: %w", name, other, ErrConflict)
	}
	m.names[name] = id
	m.mu.Unlock()

	if plan.kind == netJoin {
		if plan.join, err = m.joinTarget(plan.join); err != nil {
			m.mu.Lock()
			delete(m.names, name)
			m.mu.Unlock()
			return nil, fmt.Errorf("create container: %w", err)
		}
		opts.HostConfig.NetworkMode = "container:" + plan.join
	}
	rec, err := m.createFiles(ctx, id, name, img, opts, binds, plan)
	if err != nil {
		m.mu.Lock()
		delete(m.names, name)
		m.mu.Unlock()
		return nil, err
	}
	c := &ctr{rec: rec, changed: make(chan struct{}), runDone: closedChan}
	m.mu.Lock()
	m.byID[id] = c
	m.persistLocked(c)
	m.emitLocked(rec, "create")
	out := rec.clone()
	m.mu.Unlock()
	return out, nil
}

// createFiles makes the container directory, rootfs, /etc files and bundle;
// on failure it leaves nothing behind.
func (m *Manager) createFiles(ctx context.Context, id, name string, img *image.Image, opts CreateOptions, binds []specgen.Bind, plan netPlan) (_ *Container, err error) {
	dir := m.dir(id)
	rootfs := filepath.Join(dir, "rootfs")
	rec := &Container{
		ID: id, Name: name, Image: img.ID.String(), ImageName: opts.Config.Image,
		Created:        m.d.now().UTC(),
		Config:         opts.Config,
		HostConfig:     opts.HostConfig,
		State:          State{Status: StatusCreated},
		LogPath:        filepath.Join(dir, id+"-json.log"),
		HostnamePath:   filepath.Join(dir, "hostname"),
		HostsPath:      filepath.Join(dir, "hosts"),
		ResolvConfPath: filepath.Join(dir, "resolv.conf"),
		Rootfs:         rootfs,
	}
	if rec.Config.Hostname == "" {
		rec.Config.Hostname = id[:12]
	}
	if err := os.Mkdir(dir, 0o710); err != nil {
		return nil, fmt.Errorf("create container %s: %w", id, err)
	}
	defer func() {
		if err != nil {
			if cerr := m.destroyFiles(rec); cerr != nil {
				m.log.Warn("clean up failed create", "container", id, "err", cerr)
			}
		}
	}()
	if err := m.mountRootfs(ctx, rec); err != nil {
		return nil, err
	}
	netns, files, err := m.createNetwork(ctx, rec, plan)
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", id, err)
	}
	for p, data := range files {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return nil, fmt.Errorf("create container %s: %w", id, err)
		}
	}
	extra := []specs.Mount{
		{Destination: "/etc/resolv.conf", Type: "bind", Source: rec.ResolvConfPath, Options: []string{"rbind", "rprivate"}},
		{Destination: "/etc/hostname", Type: "bind", Source: rec.HostnamePath, Options: []string{"rbind", "rprivate"}},
		{Destination: "/etc/hosts", Type: "bind", Source: rec.HostsPath, Options: []string{"rbind", "rprivate"}},
	}
	hc := opts.HostConfig
	spec, err := specgen.Generate(specgen.Options{
		Image:            img.Config.Config,
		Entrypoint:       opts.Config.Entrypoint,
		Cmd:              opts.Config.Cmd,
		Env:              opts.Config.Env,
		User:             opts.Config.User,
		WorkingDir:       opts.Config.WorkingDir,
		Hostname:         rec.Config.Hostname,
		ID:               id,
		Tty:              opts.Config.Tty,
		RootfsPath:       rootfs,
		ReadonlyRootfs:   hc.ReadonlyRootfs,
		Binds:            binds,
		Memory:           hc.Memory,
		MemorySwap:       hc.MemorySwap,
		NanoCPUs:         hc.NanoCPUs,
		CPUShares:        hc.CPUShares,
		PidsLimit:        hc.PidsLimit,
		CapAdd:           hc.CapAdd,
		CapDrop:          hc.CapDrop,
		Privileged:       hc.Privileged,
		NetworkNamespace: netns,
		ShmSize:          hc.ShmSize,
		CgroupsPath:      path.Join(m.cgroupParent, id),
		Rootfs:           os.DirFS(rootfs),
		ExtraMounts:      extra,
	})
	if err != nil {
		if errors.Is(err, specgen.ErrInvalid) {
			return nil, fmt.Errorf("create container %s: %w: %w", id, ErrInvalid, err)
		}
		return nil, fmt.Errorf("create container %s: %w", id, err)
	}
	fitRlimits(spec)
	if plan.kind == netOwn && spec.Linux != nil && spec.Linux.Sysctl == nil {
		// Docker's defaults for the container's own namespace, which specgen
		// sets only for a namespace it creates.
		spec.Linux.Sysctl = map[string]string{
			"net.ipv4.ping_group_range":           "0 2147483647",
			"net.ipv4.ip_unprivileged_port_start": "0",
		}
	}
	if spec.Process != nil && len(spec.Process.Args) > 0 {
		rec.Path, rec.Args = spec.Process.Args[0], spec.Process.Args[1:]
	}
	if rec.Config.StopSignal == "" && img.Config.Config.StopSignal != "" {
		rec.Config.StopSignal = img.Config.Config.StopSignal
	}
	bundle := filepath.Join(dir, "bundle")
	if err := os.Mkdir(bundle, 0o700); err != nil {
		return nil, fmt.Errorf("create container %s: %w", id, err)
	}
	if err := shim.WriteJSONAtomic(filepath.Join(bundle, "config.json"), spec); err != nil {
		return nil, fmt.Errorf("create container %s: %w", id, err)
	}
	return rec, nil
}

// mountRootfs mounts the container's overlay unless it is mounted already.
func (m *Manager) mountRootfs(ctx context.Context, rec *Container) error {
	dir := m.dir(rec.ID)
	if ok, err := m.d.mounter.Mounted(rec.Rootfs); err == nil && ok {
		return nil
	}
	layers, err := m.d.images.LayerDirs(ctx, digest.Digest(rec.Image))
	if err != nil {
		return fmt.Errorf("container %s: layers of image %s: %w", rec.ID, rec.Image, err)
	}
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	for _, d := range []string{upper, work, rec.Rootfs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("container %s: %w", rec.ID, err)
		}
	}
	if err := m.d.mounter.Mount(layers, upper, work, rec.Rootfs); err != nil {
		return fmt.Errorf("container %s: mount rootfs: %w", rec.ID, err)
	}
	return nil
}

// destroyFiles disconnects the container's network, unmounts the rootfs
// and removes the container directory.
func (m *Manager) destroyFiles(rec *Container) error {
	if err := m.teardownNetwork(rec); err != nil {
		return fmt.Errorf("remove container %s: %w", rec.ID, err)
	}
	dir := m.dir(rec.ID)
	rootfs := filepath.Join(dir, "rootfs")
	if err := m.d.mounter.Unmount(rootfs); err != nil {
		return fmt.Errorf("remove container %s: %w", rec.ID, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove container %s: %w", rec.ID, err)
	}
	return nil
}

// ---- start ----

// Start starts a created or stopped container. Clients that attached before
// are connected before the process runs, so they see all of its output.
func (m *Manager) Start(ctx context.Context, ref string) error {
	c, err := m.lookup(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	return m.start(ctx, c, false)
}

func (m *Manager) start(ctx context.Context, c *ctr, policy bool) error {
	m.mu.Lock()
	id := c.rec.ID
	switch {
	case c.removed || c.rec.State.Status == StatusRemoving:
		m.mu.Unlock()
		return fmt.Errorf("start container %s: %w: it is being removed", id, ErrConflict)
	case c.rec.State.Running:
		m.mu.Unlock()
		return fmt.Errorf("start container %s: %w: already running", id, ErrNotModified)
	case c.rec.State.Restarting && !policy:
		c.restartTimer.Stop()
		c.rec.State.Restarting = false
	case m.closed:
		m.mu.Unlock()
		return fmt.Errorf("start container %s: %w: manager closed", id, ErrConflict)
	}
	c.manualStop = false
	rec := c.rec.clone()
	m.mu.Unlock()

	fail := func(err error) error {
		m.mu.Lock()
		st := &c.rec.State
		st.Status, st.Restarting, st.Running, st.Pid = StatusExited, false, false, 0
		if st.StartedAt.IsZero() {
			st.Status = StatusCreated
		}
		st.Error = err.Error()
		st.ExitCode = startErrorCode(err)
		c.notifyLocked()
		m.persistLocked(c)
		m.mu.Unlock()
		return fmt.Errorf("start container %s: %w", id, err)
	}
	dir := m.dir(id)
	if err := m.mountRootfs(ctx, rec); err != nil {
		return fail(err)
	}
	if changed, err := m.ensureNetwork(ctx, rec); err != nil {
		return fail(err)
	} else if changed {
		if err := m.writeNetFiles(rec); err != nil {
			return fail(err)
		}
		m.mu.Lock()
		c.rec.NetNSPath, c.rec.Networks = rec.NetNSPath, rec.Networks
		m.persistLocked(c)
		m.mu.Unlock()
	}
	if err := os.Remove(filepath.Join(dir, shim.ExitFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail(err)
	}
	cfg := shim.Config{
		ID: id, Bundle: filepath.Join(dir, "bundle"), RuntimeRoot: m.runRoot, Dir: dir,
		LogPath: rec.LogPath, CgroupsPath: path.Join(m.cgroupParent, id),
		Tty: rec.Config.Tty, OpenStdin: rec.Config.OpenStdin, StdinOnce: rec.Config.StdinOnce,
	}
	if err := shim.WriteJSONAtomic(filepath.Join(dir, shim.ConfigFile), cfg); err != nil {
		return fail(err)
	}
	if _, err := m.d.launcher.Launch(ctx, dir); err != nil {
		return fail(err)
	}
	client := &shim.Client{Dir: dir}
	started := make(chan struct{})
	m.mu.Lock()
	c.runDone = make(chan struct{})
	pending := c.pending
	c.pending = nil
	m.mu.Unlock()
	m.monitor(c, client, started)
	defer close(started)

	for _, a := range pending {
		sess, err := client.Attach(ctx, a.streams)
		a.bind(sess, err)
	}
	pid, err := client.Start(ctx)
	if err != nil {
		_ = client.Kill(context.WithoutCancel(ctx), sigKILL, true)
		return fail(err)
	}
	m.mu.Lock()
	st := &c.rec.State
	*st = State{Status: StatusRunning, Running: true, Pid: pid, StartedAt: m.d.now().UTC(), RestartCount: st.RestartCount}
	c.notifyLocked()
	m.persistLocked(c)
	m.emitLocked(c.rec, "start")
	m.mu.Unlock()
	return nil
}

// monitor waits (in the background) for the exit of the container's current
// run; started is closed once Start has recorded the run.
func (m *Manager) monitor(c *ctr, client *shim.Client, started <-chan struct{}) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		exit, err := client.Wait(m.ctx)
		if m.ctx.Err() != nil {
			return
		}
		if e, rerr := shim.ReadExit(client.Dir); rerr == nil {
			exit = e
		} else if err != nil || exit == nil {
			exit = &shim.Exit{ExitCode: 255, FinishedAt: m.d.now().UTC(), Error: fmt.Sprintf("container's shim exited without recording its exit: %v", err)}
		}
		select {
		case <-started:
		case <-m.ctx.Done():
			return
		}
		m.handleExit(c, exit)
	}()
}

// handleExit records the end of a run and applies the restart policy and
// AutoRemove.
func (m *Manager) handleExit(c *ctr, exit *shim.Exit) {
	m.mu.Lock()
	if c.removed {
		c.gen++
		c.notifyLocked()
		m.mu.Unlock()
		return
	}
	st := &c.rec.State
	ran := exit.FinishedAt.Sub(st.StartedAt)
	// A run that never started (its start failed, and recorded why) keeps
	// the start's error and exit code.
	wasStarted := st.Running
	st.Running, st.Paused, st.Pid = false, false, 0
	st.Status = StatusExited
	if wasStarted || exit.Error != "" {
		st.ExitCode = exit.ExitCode
		st.Error = exit.Error
		st.OOMKilled = exit.OOMKilled
		st.FinishedAt = exit.FinishedAt
	}
	if st.StartedAt.IsZero() {
		st.Status = StatusCreated
	}
	c.gen++
	select {
	case <-c.runDone:
	default:
		close(c.runDone)
	}
	restart, delay := false, time.Duration(0)
	if wasStarted && !m.closed {
		restart, delay = restartDecision(c.rec.HostConfig.RestartPolicy, st.ExitCode, st.RestartCount, c.manualStop, ran, c.restartDelay)
	}
	if restart {
		st.Status, st.Restarting = StatusRestarting, true
		c.restartDelay = delay
		c.restartTimer = time.AfterFunc(delay, func() { m.policyRestart(c) })
	} else if ran >= backoffReset {
		c.restartDelay = 0
	}
	c.notifyLocked()
	m.persistLocked(c)
	if wasStarted {
		if exit.OOMKilled {
			m.emitLocked(c.rec, "oom")
		}
		m.emitLocked(c.rec, "die", "exitCode", strconv.Itoa(st.ExitCode))
	}
	autoRemove := wasStarted && !restart && c.rec.HostConfig.AutoRemove && !m.closed
	id := c.rec.ID
	m.mu.Unlock()
	if autoRemove {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := m.Remove(context.Background(), id, true, true); err != nil && !errors.Is(err, ErrNotFound) {
				m.log.Error("auto-remove", "container", id, "err", err)
			}
		}()
	}
}

// policyRestart restarts a container whose restart delay has passed.
func (m *Manager) policyRestart(c *ctr) {
	c.op.Lock()
	defer c.op.Unlock()
	m.mu.Lock()
	if c.removed || m.closed || !c.rec.State.Restarting {
		m.mu.Unlock()
		return
	}
	c.rec.State.RestartCount++
	m.mu.Unlock()
	if err := m.start(m.ctx, c, true); err != nil {
		m.log.Error("restart by policy", "container", c.rec.ID, "err", err)
		return
	}
	m.emit(c, "restart")
}

// ---- stop, kill, restart ----

// Stop stops a running container: its stop signal, then SIGKILL after
// timeout (nil: the container's StopTimeout, then 10 s; negative: wait for
// ever). A stop cancels a pending policy restart; stopping a stopped
// container is ErrNotModified.
func (m *Manager) Stop(ctx context.Context, ref string, timeout *time.Duration) error {
	c, err := m.lookup(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	return m.stop(ctx, c, timeout)
}

func (m *Manager) stop(ctx context.Context, c *ctr, timeout *time.Duration) error {
	m.mu.Lock()
	id := c.rec.ID
	st := &c.rec.State
	if st.Restarting {
		c.restartTimer.Stop()
		st.Restarting, st.Status = false, StatusExited
		c.manualStop = true
		c.notifyLocked()
		m.persistLocked(c)
		m.emitLocked(c.rec, "stop")
		m.mu.Unlock()
		return nil
	}
	if !st.Running {
		m.mu.Unlock()
		return fmt.Errorf("stop container %s: %w: not running", id, ErrNotModified)
	}
	c.manualStop = true
	gen := c.gen
	sig := stopSignal(c.rec.Config.StopSignal, "")
	grace := 10 * time.Second
	if c.rec.Config.StopTimeout != nil {
		grace = time.Duration(*c.rec.Config.StopTimeout) * time.Second
	}
	if timeout != nil {
		grace = *timeout
	}
	m.mu.Unlock()

	client := &shim.Client{Dir: m.dir(id)}
	if err := client.Kill(ctx, sig, false); err != nil && !errors.Is(err, shim.ErrNotRunning) && !errors.Is(err, shim.ErrUnavailable) {
		m.log.Warn("send stop signal", "container", id, "err", err)
	}
	m.emit(c, "kill", "signal", strconv.Itoa(int(sig)))
	if grace >= 0 {
		wctx, cancel := context.WithTimeout(ctx, grace)
		err := m.waitGen(wctx, c, gen)
		cancel()
		if err != nil && ctx.Err() != nil {
			return fmt.Errorf("stop container %s: %w", id, ctx.Err())
		}
		if err != nil {
			m.log.Info("container did not stop in time; killing it", "container", id, "timeout", grace)
			if err := client.Kill(ctx, sigKILL, true); err != nil && !errors.Is(err, shim.ErrNotRunning) && !errors.Is(err, shim.ErrUnavailable) {
				return fmt.Errorf("stop container %s: %w", id, err)
			}
			m.emit(c, "kill", "signal", strconv.Itoa(int(sigKILL)))
		}
	}
	if err := m.waitGen(ctx, c, gen); err != nil {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	m.emit(c, "stop")
	return nil
}

// waitGen waits until c's exit generation passes gen (or it is removed).
func (m *Manager) waitGen(ctx context.Context, c *ctr, gen int) error {
	for {
		m.mu.Lock()
		done := c.gen > gen || c.removed
		ch := c.changed
		m.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Kill sends sig (0: SIGKILL) to the container's init. Killing with the
// container's stop signal counts as a manual stop for the restart policy.
func (m *Manager) Kill(ctx context.Context, ref string, sig syscall.Signal) error {
	c, err := m.lookup(ref)
	if err != nil {
		return err
	}
	if sig == 0 {
		sig = sigKILL
	}
	m.mu.Lock()
	id := c.rec.ID
	if !c.rec.State.Running {
		m.mu.Unlock()
		return fmt.Errorf("kill container %s: %w", id, ErrNotRunning)
	}
	if sig == stopSignal(c.rec.Config.StopSignal, "") {
		c.manualStop = true
	}
	m.mu.Unlock()
	client := &shim.Client{Dir: m.dir(id)}
	if err := client.Kill(ctx, sig, false); err != nil {
		if errors.Is(err, shim.ErrNotRunning) || errors.Is(err, shim.ErrUnavailable) {
			return fmt.Errorf("kill container %s: %w", id, ErrNotRunning)
		}
		return fmt.Errorf("kill container %s: %w", id, err)
	}
	m.emit(c, "kill", "signal", strconv.Itoa(int(sig)))
	return nil
}

// Restart stops the container if it runs (as Stop) and starts it.
func (m *Manager) Restart(ctx context.Context, ref string, timeout *time.Duration) error {
	c, err := m.lookup(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	if err := m.stop(ctx, c, timeout); err != nil && !errors.Is(err, ErrNotModified) {
		return err
	}
	if err := m.start(ctx, c, false); err != nil {
		return err
	}
	m.emit(c, "restart")
	return nil
}

// Resize sets the size of the container's terminal.
func (m *Manager) Resize(ctx context.Context, ref string, height, width uint16) error {
	c, err := m.lookup(ref)
	if err != nil {
		return err
	}
	m.mu.Lock()
	id, running := c.rec.ID, c.rec.State.Running
	m.mu.Unlock()
	if !running {
		return fmt.Errorf("resize container %s: %w", id, ErrNotRunning)
	}
	if err := (&shim.Client{Dir: m.dir(id)}).Resize(ctx, height, width); err != nil {
		return fmt.Errorf("resize container %s: %w", id, err)
	}
	return nil
}

// ---- wait ----

// Wait registers a wait for condition ("" or "not-running", "next-exit",
// "removed") and returns a channel that receives one result. The wait is
// registered when Wait returns, so a "next-exit" wait followed by Start sees
// that start's exit.
func (m *Manager) Wait(ctx context.Context, ref string, condition string) (<-chan WaitResult, error) {
	c, err := m.lookup(ref)
	if err != nil {
		return nil, err
	}
	switch condition {
	case "", WaitNotRunning, WaitNextExit, WaitRemoved:
	default:
		return nil, fmt.Errorf("wait for container %s: %w: invalid condition %q", ref, ErrInvalid, condition)
	}
	m.mu.Lock()
	gen := c.gen
	m.mu.Unlock()
	out := make(chan WaitResult, 1)
	go func() {
		for {
			m.mu.Lock()
			st := c.rec.State
			var done bool
			switch condition {
			case "", WaitNotRunning:
				done = !st.Running || c.gen > gen || c.removed
			case WaitNextExit:
				done = c.gen > gen || c.removed
			case WaitRemoved:
				done = c.removed
			}
			ch := c.changed
			m.mu.Unlock()
			if done {
				out <- WaitResult{ExitCode: st.ExitCode, Error: st.Error}
				return
			}
			select {
			case <-ch:
			case <-ctx.Done():
				out <- WaitResult{Err: ctx.Err()}
				return
			}
		}
	}()
	return out, nil
}

// ---- remove ----

// Remove removes a container: a running one only with force (killed first).
// removeVolumes is accepted for Docker's API; berth creates no anonymous
// volumes, so there are none to remove.
func (m *Manager) Remove(ctx context.Context, ref string, force, removeVolumes bool) error {
	c, err := m.lookup(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	m.mu.Lock()
	id := c.rec.ID
	st := &c.rec.State
	if c.removed {
		m.mu.Unlock()
		return fmt.Errorf("no such container: %s: %w", ref, ErrNotFound)
	}
	if (st.Running || st.Restarting) && !force {
		m.mu.Unlock()
		return fmt.Errorf("remove container %s: %w: you cannot remove a running container; stop it first or force the removal", id, ErrConflict)
	}
	if st.Restarting {
		c.restartTimer.Stop()
		st.Restarting = false
	}
	c.manualStop = true
	gen, running := c.gen, st.Running
	m.mu.Unlock()
	if running {
		client := &shim.Client{Dir: m.dir(id)}
		if err := client.Kill(ctx, sigKILL, true); err != nil && !errors.Is(err, shim.ErrNotRunning) && !errors.Is(err, shim.ErrUnavailable) {
			return fmt.Errorf("remove container %s: %w", id, err)
		}
		if err := m.waitGen(ctx, c, gen); err != nil {
			return fmt.Errorf("remove container %s: %w", id, err)
		}
		m.log.Debug("killed container for removal", "container", id)
	}
	m.mu.Lock()
	st.Status = StatusRemoving
	m.persistLocked(c)
	rec := c.rec.clone()
	pending := c.pending
	c.pending = nil
	m.mu.Unlock()
	for _, a := range pending {
		a.finish(fmt.Errorf("attach: container %s: %w", id, ErrNotFound))
	}
	err = m.destroyFiles(rec)
	m.log.Debug("removed container files", "container", id, "err", err)
	if err != nil {
		m.mu.Lock()
		st.Status, st.Dead = StatusDead, true
		st.Error = err.Error()
		m.persistLocked(c)
		c.notifyLocked()
		m.mu.Unlock()
		return err
	}
	m.mu.Lock()
	c.removed = true
	delete(m.byID, id)
	if m.names[c.rec.Name] == id {
		delete(m.names, c.rec.Name)
	}
	c.notifyLocked()
	m.emitLocked(c.rec, "destroy")
	m.mu.Unlock()
	return nil
}

// ---- logs ----

// Logs sends the container's log entries selected by opts to fn; with
// Follow it continues until the container stops (or ctx ends).
func (m *Manager) Logs(ctx context.Context, ref string, opts LogsOptions, fn func(jsonlog.Entry) error) error {
	c, err := m.lookup(ref)
	if err != nil {
		return err
	}
	m.mu.Lock()
	p := c.rec.LogPath
	done := c.runDone
	m.mu.Unlock()
	both := opts.Stdout == opts.Stderr
	err = jsonlog.Read(ctx, p, jsonlog.ReadOptions{Tail: opts.Tail, Since: opts.Since, Until: opts.Until, Follow: opts.Follow, Done: done},
		func(e jsonlog.Entry) error {
			if both || (opts.Stdout && e.Stream == "stdout") || (opts.Stderr && e.Stream == "stderr") {
				return fn(e)
			}
			return nil
		})
	if errors.Is(err, fs.ErrNotExist) {
		return nil // never started: no log yet
	}
	return err
}

// ---- attach ----

// AttachSession is an attached client's session with a container, as
// Attach returns it. The engine's handlers use only these methods, so other
// backends (platform/hcs) implement it with their own types; *Attachment is
// this Manager's.
type AttachSession interface {
	// Done is closed when the session has ended: the container exited, the
	// client detached, or writing to it failed.
	Done() <-chan struct{}
	// Wait waits for the session to end (or ctx) and returns why it failed,
	// if it did. All output of the attached streams has been written when
	// it returns nil.
	Wait(ctx context.Context) error
	// Close detaches; the container keeps running.
	Close() error
}

// ExecSession is a process started in a container, as Exec returns it.
// *Exec is this Manager's; other backends implement it with their own types.
type ExecSession interface {
	// Pid is the process's ID as the backend sees it.
	Pid() int
	// Resize sets the size of the process's terminal (Tty only).
	Resize(height, width uint16) error
	// Done is closed when the process has exited and its output is
	// delivered (or the stream broke).
	Done() <-chan struct{}
	// Wait waits for the process to exit (or ctx) and returns its exit code.
	Wait(ctx context.Context) (int, error)
	// Close detaches from the process, which keeps running.
	Close() error
}

var (
	_ AttachSession = (*Attachment)(nil)
	_ ExecSession   = (*Exec)(nil)
)

// Attachment is an attached client's session with a container.
type Attachment struct {
	streams shim.Streams

	mu     sync.Mutex
	sess   *shim.Session
	done   chan struct{}
	err    error
	closed bool
}

func newAttachment(st shim.Streams) *Attachment {
	return &Attachment{streams: st, done: make(chan struct{})}
}

func (a *Attachment) bind(sess *shim.Session, err error) {
	if err != nil {
		a.finish(err)
		return
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		sess.Close()
		return
	}
	a.sess = sess
	a.mu.Unlock()
	go func() {
		_, err := sess.Wait(context.Background())
		a.finish(err)
	}()
}

func (a *Attachment) finish(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-a.done:
		return
	default:
	}
	a.err = err
	close(a.done)
}

// Done is closed when the attachment has ended: the container exited, the
// client detached, or writing to it failed.
func (a *Attachment) Done() <-chan struct{} { return a.done }

// Wait waits for the attachment to end and returns why it failed, if it did.
func (a *Attachment) Wait(ctx context.Context) error {
	select {
	case <-a.done:
		return a.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close detaches.
func (a *Attachment) Close() error {
	a.mu.Lock()
	a.closed = true
	sess := a.sess
	a.mu.Unlock()
	if sess != nil {
		sess.Close()
	}
	a.finish(nil)
	return nil
}

// Attach attaches streams to the container. To a running container it
// attaches now; otherwise it attaches at the next start, before the process
// runs (docker run's attach-then-start).
func (m *Manager) Attach(ctx context.Context, ref string, opts AttachOptions) (AttachSession, error) {
	c, err := m.lookup(ref)
	if err != nil {
		return nil, err
	}
	st := shim.Streams{Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr}
	a := newAttachment(st)
	m.mu.Lock()
	id := c.rec.ID
	if c.rec.State.Status == StatusRemoving || c.removed {
		m.mu.Unlock()
		return nil, fmt.Errorf("attach to container %s: %w: it is being removed", id, ErrConflict)
	}
	if !c.rec.State.Running {
		c.pending = append(c.pending, a)
		m.mu.Unlock()
		go func() {
			<-a.done
			m.mu.Lock()
			for i, p := range c.pending {
				if p == a {
					c.pending = append(c.pending[:i], c.pending[i+1:]...)
					break
				}
			}
			m.mu.Unlock()
		}()
		return a, nil
	}
	m.mu.Unlock()
	sess, err := (&shim.Client{Dir: m.dir(id)}).Attach(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("attach to container %s: %w", id, err)
	}
	a.bind(sess, nil)
	return a, nil
}

// ---- exec ----

// Exec is a process run in a container by Exec.
type Exec struct {
	sess *shim.Session
	m    *Manager
	c    *ctr
	code int
	once sync.Once
	err  error
}

// Pid is the process's pid as the agent sees it.
func (e *Exec) Pid() int { return e.sess.Pid }

// Resize sets the size of the exec's terminal.
func (e *Exec) Resize(height, width uint16) error { return e.sess.Resize(height, width) }

// Done is closed when the process has exited and its output is delivered
// (or the stream broke).
func (e *Exec) Done() <-chan struct{} { return e.sess.Done() }

// Wait waits for the process to exit and returns its exit code (128+signal
// when killed by a signal).
func (e *Exec) Wait(ctx context.Context) (int, error) {
	select {
	case <-e.sess.Done():
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	e.once.Do(func() {
		exit, err := e.sess.Wait(ctx)
		switch {
		case err != nil:
			e.err = fmt.Errorf("exec in container %s: %w", e.c.rec.ID, err)
		case exit == nil:
			e.err = fmt.Errorf("exec in container %s: %w: the stream ended without an exit status", e.c.rec.ID, ErrNotRunning)
		default:
			e.code = exit.ExitCode
			e.m.emit(e.c, "exec_die", "exitCode", strconv.Itoa(exit.ExitCode))
		}
	})
	return e.code, e.err
}

// Close detaches from the process (which keeps running).
func (e *Exec) Close() error { return e.sess.Close() }

// Exec runs a process in the running container, joining all its namespaces.
func (m *Manager) Exec(ctx context.Context, ref string, opts ExecOptions) (ExecSession, error) {
	c, err := m.lookup(ref)
	if err != nil {
		return nil, err
	}
	if len(opts.Cmd) == 0 {
		return nil, fmt.Errorf("exec in container %s: %w: no command", ref, ErrInvalid)
	}
	m.mu.Lock()
	id, running, rootfs := c.rec.ID, c.rec.State.Running, c.rec.Rootfs
	spec := c.spec
	m.mu.Unlock()
	if !running {
		return nil, fmt.Errorf("exec in container %s: %w", id, ErrNotRunning)
	}
	if spec == nil {
		b, err := os.ReadFile(filepath.Join(m.dir(id), "bundle", "config.json"))
		if err != nil {
			return nil, fmt.Errorf("exec in container %s: %w", id, err)
		}
		spec = new(specs.Spec)
		if err := json.Unmarshal(b, spec); err != nil {
			return nil, fmt.Errorf("exec in container %s: read spec: %w", id, err)
		}
		m.mu.Lock()
		c.spec = spec
		m.mu.Unlock()
	}
	proc, err := specgen.ProcessFor(spec, os.DirFS(rootfs), opts.Cmd, opts.Env, opts.User, opts.WorkingDir, opts.Tty)
	if err != nil {
		if errors.Is(err, specgen.ErrInvalid) {
			return nil, fmt.Errorf("exec in container %s: %w: %w", id, ErrInvalid, err)
		}
		return nil, fmt.Errorf("exec in container %s: %w", id, err)
	}
	st := shim.Streams{Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr}
	sess, err := (&shim.Client{Dir: m.dir(id)}).Exec(ctx, proc, st)
	if err != nil {
		if errors.Is(err, shim.ErrNotRunning) {
			return nil, fmt.Errorf("exec in container %s: %w", id, ErrNotRunning)
		}
		return nil, fmt.Errorf("exec in container %s: %w", id, err)
	}
	m.emit(c, "exec_start", "execPid", strconv.Itoa(sess.Pid))
	return &Exec{sess: sess, m: m, c: c}, nil
}

// ---- resource usage ----

// cgroup returns the cgroup manager of a running container.
func (m *Manager) cgroup(ref, op string) (cgroups.Manager, string, error) {
	c, err := m.lookup(ref)
	if err != nil {
		return nil, "", err
	}
	m.mu.Lock()
	id, running := c.rec.ID, c.rec.State.Running
	m.mu.Unlock()
	if !running {
		return nil, id, fmt.Errorf("%s of container %s: %w", op, id, ErrNotRunning)
	}
	cg, err := cgroups.New(path.Join(m.cgroupParent, id))
	if err != nil {
		return nil, id, fmt.Errorf("%s of container %s: %w", op, id, err)
	}
	return cg, id, nil
}

// Stats reads the resource usage of a running container (docker stats).
func (m *Manager) Stats(ref string) (*cgroups.Stats, error) {
	cg, id, err := m.cgroup(ref, "stats")
	if err != nil {
		return nil, err
	}
	st, err := cg.Stats()
	if err != nil {
		return nil, fmt.Errorf("stats of container %s: %w", id, err)
	}
	return st, nil
}

// Pids lists the processes of a running container, as the agent sees
// their pids (docker top).
func (m *Manager) Pids(ref string) ([]int, error) {
	cg, id, err := m.cgroup(ref, "processes")
	if err != nil {
		return nil, err
	}
	pids, err := cg.Pids()
	if err != nil {
		return nil, fmt.Errorf("processes of container %s: %w", id, err)
	}
	sort.Ints(pids)
	return pids, nil
}

// Rename gives the container a new name (docker rename).
func (m *Manager) Rename(ref, newName string) error {
	name, err := normalizeName(newName)
	if err != nil {
		return fmt.Errorf("rename container %s: %w", ref, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.lookupLocked(ref)
	if err != nil {
		return err
	}
	old := c.rec.Name
	if name == old {
		return nil
	}
	if other, taken := m.names[name]; taken {
		return fmt.Errorf("rename container %s: the name %q is already in use by container %q: %w", c.rec.ID, name, other, ErrConflict)
	}
	delete(m.names, old)
	m.names[name] = c.rec.ID
	c.rec.Name = name
	m.persistLocked(c)
	m.emitLocked(c.rec, "rename", "oldName", old)
	return nil
}
