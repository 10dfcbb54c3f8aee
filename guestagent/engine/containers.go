package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/storage"

	"github.com/berth-dev/berth/guestagent/runtime/container"
	"github.com/berth-dev/berth/guestagent/runtime/jsonlog"
)

// ContainerService is what the engine needs of the container manager;
// *container.Manager implements it, and so does platform/hcs's Service.
type ContainerService interface {
	Create(ctx context.Context, opts container.CreateOptions) (*container.Container, error)
	Get(ref string) (*container.Container, error)
	List(opts container.ListOptions) ([]*container.Container, error)
	Start(ctx context.Context, ref string) error
	Stop(ctx context.Context, ref string, timeout *time.Duration) error
	Restart(ctx context.Context, ref string, timeout *time.Duration) error
	Kill(ctx context.Context, ref string, sig syscall.Signal) error
	Wait(ctx context.Context, ref string, condition string) (<-chan container.WaitResult, error)
	Remove(ctx context.Context, ref string, force, removeVolumes bool) error
	Resize(ctx context.Context, ref string, height, width uint16) error
	Logs(ctx context.Context, ref string, opts container.LogsOptions, fn func(jsonlog.Entry) error) error
	// Attach and Exec return the backend's sessions; the engine hijacks
	// the connection and hands them the streams (streams.go).
	Attach(ctx context.Context, ref string, opts container.AttachOptions) (container.AttachSession, error)
	Exec(ctx context.Context, ref string, opts container.ExecOptions) (container.ExecSession, error)
	Subscribe() (<-chan container.Event, func())
}

var _ ContainerService = (*container.Manager)(nil)

func (s *Server) containerRoutes(mux *http.ServeMux) {
	s.handle(mux, "POST /containers/create", s.postContainersCreate)
	s.handle(mux, "GET /containers/json", s.getContainersJSON)
	s.handle(mux, "POST /containers/prune", s.postContainersPrune)
	s.handle(mux, "GET /containers/{id}/json", s.getContainerJSON)
	s.handle(mux, "POST /containers/{id}/start", s.postContainerStart)
	s.handle(mux, "POST /containers/{id}/stop", s.postContainerStop)
	s.handle(mux, "POST /containers/{id}/restart", s.postContainerRestart)
	s.handle(mux, "POST /containers/{id}/kill", s.postContainerKill)
	s.handle(mux, "POST /containers/{id}/wait", s.postContainerWait)
	s.handle(mux, "POST /containers/{id}/resize", s.postContainerResize)
	s.handle(mux, "DELETE /containers/{id}", s.deleteContainer)
	s.handle(mux, "POST /containers/{id}/attach", s.postContainerAttach)
	s.handle(mux, "GET /containers/{id}/logs", s.getContainerLogs)
	s.handle(mux, "POST /containers/{id}/exec", s.postContainerExec)
	s.handle(mux, "POST /exec/{id}/start", s.postExecStart)
	s.handle(mux, "POST /exec/{id}/resize", s.postExecResize)
	s.handle(mux, "GET /exec/{id}/json", s.getExecJSON)
	s.handle(mux, "HEAD /containers/{id}/archive", s.headContainerArchive)
	s.handle(mux, "GET /containers/{id}/archive", s.getContainerArchive)
	s.handle(mux, "PUT /containers/{id}/archive", s.putContainerArchive)
	s.networkRoutes(mux)
}

// noSuchContainer words a not-found error as dockerd does.
func (s *Server) noSuchContainer(ref string, err error) error {
	if s.classes.statusOf(err) == http.StatusNotFound {
		return notFoundf("No such container: %s", ref)
	}
	return err
}

func (s *Server) postContainersCreate(w http.ResponseWriter, r *http.Request) error {
	var req ctypes.CreateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Config == nil {
		return invalidf("config cannot be empty in order to create a container")
	}
	opts, warnings, err := createOptions(r.URL.Query().Get("name"), req)
	if err != nil {
		return err
	}
	if _, err := s.images.Get(r.Context(), req.Config.Image); err != nil {
		return s.noSuchImage(req.Config.Image, err)
	}
	c, err := s.containers.Create(r.Context(), opts)
	if err != nil {
		return err
	}
	s.emitConnects(c)
	if warnings == nil {
		warnings = []string{}
	}
	return writeJSON(w, http.StatusCreated, ctypes.CreateResponse{ID: c.ID, Warnings: warnings})
}

// decodeBody decodes a JSON request body; an empty body decodes as zero.
func decodeBody(r *http.Request, v any) error {
	if r.Body == nil {
		return nil
	}
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return invalidf("invalid JSON body: %v", err)
	}
	return nil
}

// createOptions translates Docker's create request into the manager's
// options, refusing what berth does not implement rather than ignoring it.
func createOptions(name string, req ctypes.CreateRequest) (container.CreateOptions, []string, error) {
	cfg := req.Config
	if cfg.Image == "" {
		return container.CreateOptions{}, nil, invalidf("no image specified")
	}
	opts := container.CreateOptions{
		Name: name,
		Config: container.Config{
			Image:      cfg.Image,
			Hostname:   cfg.Hostname,
			User:       cfg.User,
			Env:        cfg.Env,
			Cmd:        cfg.Cmd,
			Entrypoint: cfg.Entrypoint,
			WorkingDir: cfg.WorkingDir,
			Tty:        cfg.Tty,
			OpenStdin:  cfg.OpenStdin,
			StdinOnce:  cfg.StdinOnce,
			Labels:     cfg.Labels,
			StopSignal: cfg.StopSignal,
		},
	}
	if cfg.Entrypoint != nil && len(cfg.Entrypoint) == 1 && cfg.Entrypoint[0] == "" {
		opts.Config.Entrypoint = []string{}
	}
	if cfg.StopTimeout != nil {
		t := *cfg.StopTimeout
		opts.Config.StopTimeout = &t
	}
	var warnings []string
	if hc := req.HostConfig; hc != nil {
		h := &opts.HostConfig
		h.Binds = hc.Binds
		h.Memory = hc.Memory
		h.MemorySwap = hc.MemorySwap
		h.NanoCPUs = hc.NanoCPUs
		h.CPUShares = hc.CPUShares
		h.PidsLimit = hc.PidsLimit
		h.ShmSize = hc.ShmSize
		h.AutoRemove = hc.AutoRemove
		h.Privileged = hc.Privileged
		h.ReadonlyRootfs = hc.ReadonlyRootfs
		h.CapAdd = hc.CapAdd
		h.CapDrop = hc.CapDrop
		h.NetworkMode = string(hc.NetworkMode)
		h.RestartPolicy = container.RestartPolicy{Name: string(hc.RestartPolicy.Name), MaximumRetryCount: hc.RestartPolicy.MaximumRetryCount}
		switch hc.RestartPolicy.Name {
		case "", "no", "always", "unless-stopped", "on-failure":
		default:
			return container.CreateOptions{}, nil, invalidf("invalid restart policy '%s'", hc.RestartPolicy.Name)
		}
		if hc.RestartPolicy.MaximumRetryCount != 0 && hc.RestartPolicy.Name != "on-failure" {
			return container.CreateOptions{}, nil, invalidf("invalid restart policy: maximum retry count can only be used with 'on-failure'")
		}
		if hc.AutoRemove && hc.RestartPolicy.Name != "" && hc.RestartPolicy.Name != "no" {
			return container.CreateOptions{}, nil, invalidf("can't create 'AutoRemove' container with restart policy")
		}
		if len(hc.PortBindings) > 0 {
			h.PortBindings = map[string][]container.PortBinding{}
			for port, bs := range hc.PortBindings {
				for _, b := range bs {
					pb := container.PortBinding{HostPort: b.HostPort}
					if b.HostIP.IsValid() {
						pb.HostIP = b.HostIP.String()
					}
					h.PortBindings[port.String()] = append(h.PortBindings[port.String()], pb)
				}
			}
		}
		if len(hc.Mounts) > 0 {
			return container.CreateOptions{}, nil, invalidf("the Mounts field is not supported by berth yet; use Binds (-v /host:/ctr)")
		}
		if len(hc.Devices) > 0 {
			warnings = append(warnings, "device mappings are not supported by berth and were ignored")
		}
	}
	if nc := req.NetworkingConfig; nc != nil && len(nc.EndpointsConfig) > 0 {
		opts.Networks = map[string]container.EndpointConfig{}
		for name, es := range nc.EndpointsConfig {
			var ec container.EndpointConfig
			if es != nil {
				ec.Aliases = es.Aliases
				if es.IPAMConfig != nil {
					if es.IPAMConfig.IPv6Address.IsValid() {
						return container.CreateOptions{}, nil, invalidf("IPv6 addresses are not supported by berth")
					}
					ec.IPv4Address = es.IPAMConfig.IPv4Address
				}
			}
			opts.Networks[name] = ec
		}
	}
	return opts, warnings, nil
}

func (s *Server) getContainersJSON(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	all, err := boolParam(r, "all")
	if err != nil {
		return err
	}
	f, err := parseFilters(q.Get("filters"))
	if err != nil {
		return err
	}
	list, err := s.containers.List(container.ListOptions{All: all, Filters: f})
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 && n < len(list) {
		list = list[:n]
	}
	out := make([]ctypes.Summary, 0, len(list))
	for _, c := range list {
		out = append(out, summarize(c))
	}
	return writeJSON(w, http.StatusOK, out)
}

func summarize(c *container.Container) ctypes.Summary {
	labels := c.Config.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	sum := ctypes.Summary{
		ID:      c.ID,
		Names:   []string{c.Name},
		Image:   c.ImageName,
		ImageID: c.Image,
		Command: strings.Join(append([]string{c.Path}, c.Args...), " "),
		Created: c.Created.Unix(),
		Ports:   portSummaries(c),
		Labels:  labels,
		State:   ctypes.ContainerState(c.State.Status),
		Status:  statusText(c.State, time.Now()),
		Mounts:  []ctypes.MountPoint{},
	}
	sum.HostConfig.NetworkMode = networkMode(c)
	sum.NetworkSettings = &ctypes.NetworkSettingsSummary{Networks: containerNetworks(c)}
	return sum
}

func networkMode(c *container.Container) string {
	if c.HostConfig.NetworkMode == "" || c.HostConfig.NetworkMode == "default" {
		return "bridge"
	}
	return c.HostConfig.NetworkMode
}

func portSummaries(c *container.Container) []ctypes.PortSummary {
	out := []ctypes.PortSummary{}
	for port, bs := range c.HostConfig.PortBindings {
		p, err := network.ParsePort(port)
		if err != nil {
			continue
		}
		for _, b := range bs {
			ps := ctypes.PortSummary{PrivatePort: p.Num(), Type: string(p.Proto())}
			if c.State.Running {
				if hp, err := strconv.Atoi(b.HostPort); err == nil {
					ps.PublicPort = uint16(hp)
				}
				ps.IP = publishAddr(b.HostIP)
			}
			out = append(out, ps)
		}
	}
	return out
}

// publishAddr is the host address a port is published on: the one the -p
// gave, else 127.0.0.1, where berth publishes by default (not dockerd's
// 0.0.0.0).
func publishAddr(hostIP string) netip.Addr {
	if ip, err := netip.ParseAddr(hostIP); err == nil {
		return ip
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1})
}

// statusText is docker ps' STATUS column: "Up 5 minutes", "Exited (3) 2
// seconds ago", "Created".
func statusText(st container.State, now time.Time) string {
	switch st.Status {
	case container.StatusRunning:
		return "Up " + humanDuration(now.Sub(st.StartedAt))
	case container.StatusPaused:
		return "Up " + humanDuration(now.Sub(st.StartedAt)) + " (Paused)"
	case container.StatusRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", st.ExitCode, humanDuration(now.Sub(st.FinishedAt)))
	case container.StatusExited:
		if st.FinishedAt.IsZero() {
			return fmt.Sprintf("Exited (%d)", st.ExitCode)
		}
		return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, humanDuration(now.Sub(st.FinishedAt)))
	case container.StatusCreated:
		return "Created"
	case container.StatusRemoving:
		return "Removal In Progress"
	case container.StatusDead:
		return "Dead"
	}
	return st.Status
}

// humanDuration renders d as docker does ("Less than a second", "3 seconds",
// "About a minute", "5 minutes", "About an hour", "2 hours", "3 days").
func humanDuration(d time.Duration) string {
	switch s := int(d.Seconds()); {
	case s < 1:
		return "Less than a second"
	case s == 1:
		return "1 second"
	case s < 60:
		return fmt.Sprintf("%d seconds", s)
	case d.Minutes() < 2:
		return "About a minute"
	case d.Minutes() < 60:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	case d.Hours() < 2:
		return "About an hour"
	case d.Hours() < 48:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	case d.Hours() < 24*7*2:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	case d.Hours() < 24*30*2:
		return fmt.Sprintf("%d weeks", int(d.Hours()/24/7))
	case d.Hours() < 24*365*2:
		return fmt.Sprintf("%d months", int(d.Hours()/24/30))
	}
	return fmt.Sprintf("%d years", int(d.Hours()/24/365))
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (s *Server) getContainerJSON(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	c, err := s.containers.Get(ref)
	if err != nil {
		return s.noSuchContainer(ref, err)
	}
	return writeJSON(w, http.StatusOK, s.inspectContainer(c))
}

func (s *Server) inspectContainer(c *container.Container) ctypes.InspectResponse {
	st := c.State
	hc := &ctypes.HostConfig{
		Binds:          c.HostConfig.Binds,
		NetworkMode:    ctypes.NetworkMode(networkMode(c)),
		RestartPolicy:  ctypes.RestartPolicy{Name: ctypes.RestartPolicyMode(c.HostConfig.RestartPolicy.Name), MaximumRetryCount: c.HostConfig.RestartPolicy.MaximumRetryCount},
		AutoRemove:     c.HostConfig.AutoRemove,
		Privileged:     c.HostConfig.Privileged,
		ReadonlyRootfs: c.HostConfig.ReadonlyRootfs,
		CapAdd:         c.HostConfig.CapAdd,
		CapDrop:        c.HostConfig.CapDrop,
		ShmSize:        c.HostConfig.ShmSize,
		PortBindings:   network.PortMap{},
	}
	hc.Memory = c.HostConfig.Memory
	hc.MemorySwap = c.HostConfig.MemorySwap
	hc.NanoCPUs = c.HostConfig.NanoCPUs
	hc.CPUShares = c.HostConfig.CPUShares
	hc.PidsLimit = c.HostConfig.PidsLimit
	ports := network.PortMap{}
	exposed := network.PortSet{}
	for port, bs := range c.HostConfig.PortBindings {
		p, err := network.ParsePort(port)
		if err != nil {
			continue
		}
		exposed[p] = struct{}{}
		for _, b := range bs {
			pb := network.PortBinding{HostPort: b.HostPort}
			if ip, err := netip.ParseAddr(b.HostIP); err == nil {
				pb.HostIP = ip
			}
			hc.PortBindings[p] = append(hc.PortBindings[p], pb)
			if st.Running {
				ports[p] = append(ports[p], network.PortBinding{HostIP: publishAddr(b.HostIP), HostPort: b.HostPort})
			}
		}
	}
	labels := c.Config.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return ctypes.InspectResponse{
		ID:      c.ID,
		Created: rfc3339(c.Created),
		Path:    c.Path,
		Args:    c.Args,
		State: &ctypes.State{
			Status:     ctypes.ContainerState(st.Status),
			Running:    st.Running,
			Paused:     st.Paused,
			Restarting: st.Restarting,
			OOMKilled:  st.OOMKilled,
			Dead:       st.Dead,
			Pid:        st.Pid,
			ExitCode:   st.ExitCode,
			Error:      st.Error,
			StartedAt:  rfc3339(st.StartedAt),
			FinishedAt: rfc3339(st.FinishedAt),
		},
		Image:          c.Image,
		ResolvConfPath: c.ResolvConfPath,
		HostnamePath:   c.HostnamePath,
		HostsPath:      c.HostsPath,
		LogPath:        c.LogPath,
		Name:           c.Name,
		RestartCount:   st.RestartCount,
		Driver:         s.storageDriver,
		Platform:       s.osType,
		HostConfig:     hc,
		GraphDriver:    &storage.DriverData{Name: s.storageDriver, Data: map[string]string{"MergedDir": c.Rootfs}},
		Mounts:         []ctypes.MountPoint{},
		Config: &ctypes.Config{
			Hostname:     c.Config.Hostname,
			User:         c.Config.User,
			Env:          c.Config.Env,
			Cmd:          c.Config.Cmd,
			Entrypoint:   c.Config.Entrypoint,
			WorkingDir:   c.Config.WorkingDir,
			Tty:          c.Config.Tty,
			OpenStdin:    c.Config.OpenStdin,
			StdinOnce:    c.Config.StdinOnce,
			Labels:       labels,
			StopSignal:   c.Config.StopSignal,
			StopTimeout:  c.Config.StopTimeout,
			Image:        c.ImageName,
			ExposedPorts: exposed,
		},
		NetworkSettings: inspectNetworkSettings(c, ports),
	}
}

func inspectNetworkSettings(c *container.Container, ports network.PortMap) *ctypes.NetworkSettings {
	ns := &ctypes.NetworkSettings{Ports: ports, Networks: containerNetworks(c)}
	if c.NetNSPath != "" {
		ns.SandboxID, ns.SandboxKey = sandboxID(c.ID), c.NetNSPath
	}
	return ns
}

func (s *Server) postContainerStart(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	if err := s.containers.Start(r.Context(), ref); err != nil {
		return s.noSuchContainer(ref, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// stopTimeout reads the "t" (seconds) query parameter; nil means the
// container's own default.
func stopTimeout(r *http.Request) (*time.Duration, error) {
	v := r.URL.Query().Get("t")
	if v == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil, invalidf("invalid value for t: %q", v)
	}
	d := time.Duration(n) * time.Second
	if n < 0 {
		d = -1 // wait forever, as dockerd
	}
	return &d, nil
}

func (s *Server) postContainerStop(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	t, err := stopTimeout(r)
	if err != nil {
		return err
	}
	if sig := r.URL.Query().Get("signal"); sig != "" {
		if _, err := parseSignal(sig); err != nil {
			return err
		}
	}
	if err := s.containers.Stop(r.Context(), ref, t); err != nil {
		return s.noSuchContainer(ref, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) postContainerRestart(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	t, err := stopTimeout(r)
	if err != nil {
		return err
	}
	if err := s.containers.Restart(r.Context(), ref, t); err != nil {
		return s.noSuchContainer(ref, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) postContainerKill(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	sig := syscall.Signal(9)
	if v := r.URL.Query().Get("signal"); v != "" {
		var err error
		if sig, err = parseSignal(v); err != nil {
			return err
		}
	}
	if err := s.containers.Kill(r.Context(), ref, sig); err != nil {
		if errors.Is(err, container.ErrNotRunning) {
			return conflictf("cannot kill container: %s: container %s is not running", ref, ref)
		}
		return s.noSuchContainer(ref, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) postContainerWait(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	cond := r.URL.Query().Get("condition")
	switch cond {
	case "":
		cond = container.WaitNotRunning
	case container.WaitNotRunning, container.WaitNextExit, container.WaitRemoved:
	default:
		return invalidf("invalid condition: %q", cond)
	}
	ch, err := s.containers.Wait(r.Context(), ref, cond)
	if err != nil {
		return s.noSuchContainer(ref, err)
	}
	// Answer the headers now, as dockerd does, so that a client can start
	// the container knowing the wait is in place.
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	var resp ctypes.WaitResponse
	select {
	case res := <-ch:
		if res.Err != nil {
			resp.Error = &ctypes.WaitExitError{Message: res.Err.Error()}
		} else {
			resp.StatusCode = int64(res.ExitCode)
			if res.Error != "" {
				resp.Error = &ctypes.WaitExitError{Message: res.Error}
			}
		}
	case <-r.Context().Done():
		return nil
	}
	return json.NewEncoder(w).Encode(resp)
}

func (s *Server) postContainerResize(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	h, wd, err := sizeParams(r)
	if err != nil {
		return err
	}
	if err := s.containers.Resize(r.Context(), ref, h, wd); err != nil {
		return s.noSuchContainer(ref, err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func sizeParams(r *http.Request) (uint16, uint16, error) {
	h, err1 := strconv.ParseUint(r.URL.Query().Get("h"), 10, 16)
	wd, err2 := strconv.ParseUint(r.URL.Query().Get("w"), 10, 16)
	if err1 != nil || err2 != nil {
		return 0, 0, invalidf("invalid terminal size: h=%q w=%q", r.URL.Query().Get("h"), r.URL.Query().Get("w"))
	}
	return uint16(h), uint16(wd), nil
}

func (s *Server) deleteContainer(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("id")
	force, err := boolParam(r, "force")
	if err != nil {
		return err
	}
	vols, err := boolParam(r, "v")
	if err != nil {
		return err
	}
	if err := s.containers.Remove(r.Context(), ref, force, vols); err != nil {
		if errors.Is(err, container.ErrConflict) && !force {
			return conflictf("cannot remove container %q: container is running: stop the container before removing or force remove", ref)
		}
		return s.noSuchContainer(ref, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) postContainersPrune(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return err
	}
	until, err := untilFilter(f)
	if err != nil {
		return err
	}
	lf := map[string][]string{"status": {"exited", "created", "dead"}}
	if l := f["label"]; len(l) > 0 {
		lf["label"] = l
	}
	list, err := s.containers.List(container.ListOptions{All: true, Filters: lf})
	if err != nil {
		return err
	}
	resp := ctypes.PruneReport{ContainersDeleted: []string{}}
	for _, c := range list {
		if !until.IsZero() && !c.Created.Before(until) {
			continue
		}
		if err := s.containers.Remove(r.Context(), c.ID, false, false); err != nil {
			s.log.Warn("prune: remove failed", "container", c.ID, "err", err)
			continue
		}
		resp.ContainersDeleted = append(resp.ContainersDeleted, c.ID)
	}
	return writeJSON(w, http.StatusOK, resp)
}

// untilFilter reads the "until" filter (a timestamp or a duration ago).
func untilFilter(f filters) (time.Time, error) {
	v := f["until"]
	if len(v) == 0 {
		return time.Time{}, nil
	}
	return parseTime(v[0], time.Now())
}

// parseTime parses Docker's time parameters: unix seconds (with optional
// fraction), RFC 3339, or a Go duration meaning "that long ago".
func parseTime(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	if sec, frac, ok := strings.Cut(v, "."); ok || isDigits(v) {
		s, err := strconv.ParseInt(sec, 10, 64)
		if err == nil {
			var ns int64
			if frac != "" {
				frac = (frac + "000000000")[:9]
				ns, _ = strconv.ParseInt(frac, 10, 64)
			}
			return time.Unix(s, ns), nil
		}
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, invalidf("invalid time value %q", v)
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
