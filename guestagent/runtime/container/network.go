package container

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/berth-dev/berth/guestagent/network"
)

// Network is what the manager needs of the network manager;
// *network.Manager implements it. Without one (Options.Network nil) every
// container but a "host" one gets a fresh, empty network namespace.
type Network interface {
	// AttachWith connects a container's namespace to a network; attaching
	// twice returns the existing endpoint.
	AttachWith(ctx context.Context, req network.AttachRequest) (network.Endpoint, error)
	// Detach disconnects a container from one network.
	Detach(ctx context.Context, containerID, network string) error
	// DetachAll disconnects a container from every network.
	DetachAll(ctx context.Context, containerID string) error
	// HostGateway is what host.docker.internal stands for.
	HostGateway() netip.Addr
	// ResolvConf is the resolv.conf of a container whose first network is
	// network.
	ResolvConf(network string) network.ResolvConf
}

var _ Network = (*network.Manager)(nil)

// netnsOps make, remove and probe persistent network namespaces; unit tests
// replace them.
type netnsOps struct {
	create func(path string) error
	remove func(path string) error
	alive  func(path string) bool
}

var defaultNetNSOps = netnsOps{create: network.NewNetNS, remove: network.DeleteNetNS, alive: netnsAlive}

// netKind is how a container is networked.
type netKind int

const (
	netLegacy netKind = iota // no network manager: a fresh, empty namespace
	netHost                  // the agent's namespace
	netOwn                   // its own persistent namespace, attached to networks (or "none")
	netJoin                  // another container's namespace
)

// netPlan is the networking of a container to be created.
type netPlan struct {
	kind netKind
	// primary is the network of NetworkMode ("bridge", "none", a user
	// network); join the container reference of "container:<ref>".
	primary, join string
	// configs are the endpoint settings by network, the primary included.
	configs map[string]EndpointConfig
}

// planNetwork classifies a NetworkMode and checks the extra networks
// against it; managed tells whether a network manager is configured.
func planNetwork(mode string, extra map[string]EndpointConfig, managed bool) (netPlan, error) {
	if mode == "" || mode == "default" {
		mode = network.DefaultNetwork
	}
	var others []string
	for n := range extra {
		if n != mode && n != "" && !(mode == network.DefaultNetwork && n == "default") {
			others = append(others, n)
		}
	}
	sort.Strings(others)
	if ref, ok := strings.CutPrefix(mode, "container:"); ok {
		switch {
		case ref == "":
			return netPlan{}, fmt.Errorf("%w: network mode %q names no container", ErrInvalid, mode)
		case len(others) > 0:
			return netPlan{}, fmt.Errorf("%w: conflicting options: container type network can't be used with other networks (%s)", ErrInvalid, strings.Join(others, ", "))
		case !managed:
			return netPlan{}, fmt.Errorf("%w: network mode %q is not supported: this agent has no network manager", ErrInvalid, mode)
		}
		return netPlan{kind: netJoin, join: ref}, nil
	}
	if !managed {
		ns, err := networkNamespace(mode)
		if err != nil {
			return netPlan{}, err
		}
		if len(others) > 0 {
			return netPlan{}, fmt.Errorf("%w: networks %s: this agent has no network manager", ErrInvalid, strings.Join(others, ", "))
		}
		if ns == "host" {
			return netPlan{kind: netHost, primary: network.HostNetwork}, nil
		}
		return netPlan{kind: netLegacy, primary: mode}, nil
	}
	p := netPlan{kind: netOwn, primary: mode, configs: map[string]EndpointConfig{mode: extra[mode]}}
	if mode == network.HostNetwork {
		p.kind = netHost
	}
	for _, n := range others {
		if mode == network.HostNetwork || mode == network.NoneNetwork || n == network.HostNetwork || n == network.NoneNetwork {
			return netPlan{}, fmt.Errorf("%w: container cannot be connected to %s and %s: host and none networking exclude other networks", ErrInvalid, mode, n)
		}
		p.configs[n] = extra[n]
	}
	if mode == network.DefaultNetwork && len(extra["default"].Aliases)+len(extra[mode].Aliases) > 0 {
		return netPlan{}, fmt.Errorf("%w: network-scoped aliases are only supported for user-defined networks", ErrInvalid)
	}
	return p, nil
}

// attachOrder lists rec's networks in attach order: the one carrying the
// default route (or, before any attach, primary) first, then by name.
func attachOrder(rec *Container, primary string) []string {
	var names []string
	first := ""
	for n, a := range rec.Networks {
		if a.Endpoint.DefaultRoute {
			first = n
		}
		names = append(names, n)
	}
	if first == "" && rec.Networks[primary] != nil {
		first = primary
	}
	sort.Slice(names, func(i, j int) bool {
		if (names[i] == first) != (names[j] == first) {
			return names[i] == first
		}
		return names[i] < names[j]
	})
	return names
}

// primaryNetwork is the network a NetworkMode names.
func primaryNetwork(mode string) string {
	if mode == "" || mode == "default" {
		return network.DefaultNetwork
	}
	return mode
}

// endpointAliases are the DNS names asked for on network: the configured
// aliases and, on user-defined networks, the short ID.
func endpointAliases(id, net string, cfg EndpointConfig) []string {
	out := slices.Clone(cfg.Aliases)
	if net != network.DefaultNetwork && net != network.NoneNetwork && net != network.HostNetwork && !slices.Contains(out, id[:12]) {
		out = append(out, id[:12])
	}
	return out
}

// ensureNetwork makes sure the container's own namespace exists and is
// attached to each of its networks; it runs at create and at every start
// (after a reboot of the agent's machine the namespace, and with it the
// endpoints, are gone and are made again). changed reports that rec's
// endpoints changed (the caller rewrites /etc/hosts and persists).
func (m *Manager) ensureNetwork(ctx context.Context, rec *Container) (changed bool, err error) {
	if rec.NetNSPath == "" || m.net == nil {
		return false, nil
	}
	if !m.nsops.alive(rec.NetNSPath) {
		// Nothing there, or the stale mount point of a gone namespace: any
		// endpoint the network manager still has is dead too.
		if err := m.net.DetachAll(ctx, rec.ID); err != nil {
			return false, fmt.Errorf("container %s: network: %w", rec.ID, err)
		}
		if err := m.nsops.remove(rec.NetNSPath); err != nil {
			return false, fmt.Errorf("container %s: network: %w", rec.ID, err)
		}
		if err := os.MkdirAll(filepath.Dir(rec.NetNSPath), 0o700); err != nil {
			return false, fmt.Errorf("container %s: network: %w", rec.ID, err)
		}
		if err := m.nsops.create(rec.NetNSPath); err != nil {
			return false, fmt.Errorf("container %s: network: %w", rec.ID, err)
		}
		for _, a := range rec.Networks {
			a.Endpoint = network.Endpoint{}
		}
		changed = true
	}
	for _, name := range attachOrder(rec, primaryNetwork(rec.HostConfig.NetworkMode)) {
		a := rec.Networks[name]
		ep, err := m.net.AttachWith(ctx, network.AttachRequest{
			ContainerID: rec.ID, Name: strings.TrimPrefix(rec.Name, "/"), NetNSPath: rec.NetNSPath,
			Network: name, Aliases: endpointAliases(rec.ID, name, a.Config), IP: a.Config.IPv4Address,
		})
		if err != nil {
			return changed, fmt.Errorf("container %s: attach to network %s: %w", rec.ID, name, err)
		}
		if !reflect.DeepEqual(ep, a.Endpoint) {
			a.Endpoint = ep
			changed = true
		}
		if ep.Network != "" && ep.Network != name && rec.Networks[ep.Network] == nil {
			// Asked for by ID or ID prefix: keep it under its name.
			delete(rec.Networks, name)
			rec.Networks[ep.Network] = a
			if rec.HostConfig.NetworkMode == name {
				rec.HostConfig.NetworkMode = ep.Network
			}
		}
	}
	return changed, nil
}

// teardownNetwork undoes what ensureNetwork made: the endpoints (veths and
// addresses) and the namespace's bind mount.
func (m *Manager) teardownNetwork(rec *Container) error {
	var errs []error
	if m.net != nil {
		if err := m.net.DetachAll(context.Background(), rec.ID); err != nil {
			errs = append(errs, err)
		}
	}
	if rec.NetNSPath != "" {
		if err := m.nsops.remove(rec.NetNSPath); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("container %s: network: %w", rec.ID, err)
	}
	return nil
}

// primaryEndpoint is the endpoint carrying the default route, if any.
func primaryEndpoint(rec *Container) *network.Endpoint {
	for _, n := range attachOrder(rec, primaryNetwork(rec.HostConfig.NetworkMode)) {
		if ep := &rec.Networks[n].Endpoint; ep.IP.IsValid() {
			return ep
		}
	}
	return nil
}

// netFiles returns the /etc/hosts and /etc/resolv.conf of a container in
// its own namespace: its hostname on its first address, host.docker.internal
// on the host gateway, and the first network's resolver (the embedded DNS
// server on user-defined networks, the upstream servers on the default
// bridge, no gateway on none).
func (m *Manager) netFiles(rec *Container) (hosts, resolv []byte) {
	ep := primaryEndpoint(rec)
	if ep == nil {
		return network.HostsFile(rec.Config.Hostname, netip.Addr{}, nil), m.net.ResolvConf(network.NoneNetwork).Bytes()
	}
	extra := map[string]netip.Addr{}
	if gw := m.net.HostGateway(); gw.IsValid() {
		extra[network.HostGatewayName] = gw
	}
	return network.HostsFile(rec.Config.Hostname, ep.IP, extra), m.net.ResolvConf(ep.Network).Bytes()
}

// writeNetFiles rewrites hosts and resolv.conf after the endpoints changed
// (before a start: the running container keeps the files it bound).
func (m *Manager) writeNetFiles(rec *Container) error {
	hosts, resolv := m.netFiles(rec)
	if err := writeFileAtomic(rec.HostsPath, hosts); err != nil {
		return err
	}
	return writeFileAtomic(rec.ResolvConfPath, resolv)
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ConnectNetwork connects the container to one more network (docker network
// connect). The container keeps the endpoint while it exists; a running one
// sees the new interface at once.
func (m *Manager) ConnectNetwork(ctx context.Context, ref, net string, cfg EndpointConfig) (*Container, error) {
	if m.net == nil {
		return nil, fmt.Errorf("connect container %s to network %s: %w: this agent has no network manager", ref, net, ErrNotSupported)
	}
	if net == "" {
		return nil, fmt.Errorf("connect container %s: %w: no network", ref, ErrInvalid)
	}
	c, err := m.lookup(ref)
	if err != nil {
		return nil, err
	}
	c.op.Lock()
	defer c.op.Unlock()
	m.mu.Lock()
	if c.removed || c.rec.State.Status == StatusRemoving {
		m.mu.Unlock()
		return nil, fmt.Errorf("connect container %s: %w: it is being removed", ref, ErrConflict)
	}
	rec := c.rec.clone()
	m.mu.Unlock()
	switch {
	case net == network.HostNetwork || net == network.NoneNetwork:
		return nil, fmt.Errorf("connect container %s to network %s: %w: a container cannot be connected to the %s network", rec.ID, net, ErrInvalid, net)
	case rec.NetNSPath == "":
		return nil, fmt.Errorf("connect container %s to network %s: %w: it shares the agent's or another container's network namespace", rec.ID, net, ErrInvalid)
	case rec.Networks[network.NoneNetwork] != nil:
		return nil, fmt.Errorf("connect container %s to network %s: %w: container cannot be disconnected from the none network nor connected to others", rec.ID, net, ErrInvalid)
	}
	for n, a := range rec.Networks {
		if n == net || a.Endpoint.NetworkID == net {
			return nil, fmt.Errorf("connect container %s: %w: it is already connected to network %s", rec.ID, ErrConflict, n)
		}
	}
	if rec.Networks == nil {
		rec.Networks = map[string]*NetworkAttachment{}
	}
	rec.Networks[net] = &NetworkAttachment{Config: cfg}
	changed, err := m.ensureNetwork(ctx, rec)
	if err != nil {
		delete(rec.Networks, net)
	}
	if changed || err == nil {
		m.mu.Lock()
		c.rec.NetNSPath, c.rec.Networks, c.rec.HostConfig.NetworkMode = rec.NetNSPath, rec.Networks, rec.HostConfig.NetworkMode
		m.persistLocked(c)
		out := c.rec.clone()
		m.mu.Unlock()
		if err == nil {
			return out, nil
		}
	}
	return nil, fmt.Errorf("connect container %s: %w", rec.ID, err)
}

// DisconnectNetwork disconnects the container from a network (docker network
// disconnect); net is the network's name or ID. force is accepted for
// Docker's API: an endpoint the network manager no longer knows is no error
// either way.
func (m *Manager) DisconnectNetwork(ctx context.Context, ref, net string, _ bool) error {
	if m.net == nil {
		return fmt.Errorf("disconnect container %s from network %s: %w: this agent has no network manager", ref, net, ErrNotSupported)
	}
	c, err := m.lookup(ref)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	m.mu.Lock()
	id := c.rec.ID
	key := ""
	for n, a := range c.rec.Networks {
		if n == net || (a.Endpoint.NetworkID != "" && a.Endpoint.NetworkID == net) {
			key = n
		}
	}
	m.mu.Unlock()
	switch {
	case key == "":
		return fmt.Errorf("disconnect container %s: %w: container %s is not connected to network %s", id, ErrInvalid, id, net)
	case key == network.HostNetwork || key == network.NoneNetwork:
		return fmt.Errorf("disconnect container %s: %w: container cannot be disconnected from the %s network", id, ErrInvalid, key)
	}
	if err := m.net.Detach(ctx, id, key); err != nil && !errors.Is(err, network.ErrNotFound) {
		return fmt.Errorf("disconnect container %s: %w", id, err)
	}
	m.mu.Lock()
	delete(c.rec.Networks, key)
	m.persistLocked(c)
	m.mu.Unlock()
	return nil
}

// createNetwork sets up rec's networking as planned and returns specgen's
// NetworkNamespace and the contents of the hostname, hosts and resolv.conf
// files by path.
func (m *Manager) createNetwork(ctx context.Context, rec *Container, plan netPlan) (string, map[string][]byte, error) {
	files := map[string][]byte{rec.HostnamePath: network.HostnameFile(rec.Config.Hostname)}
	switch plan.kind {
	case netLegacy, netHost:
		hostNet := plan.kind == netHost
		agentResolv, _ := os.ReadFile(m.resolvConf)
		agentHosts, _ := os.ReadFile(m.hosts)
		files[rec.HostsPath] = hostsFile(rec.Config.Hostname, hostNet, agentHosts)
		files[rec.ResolvConfPath] = resolvConf(agentResolv, hostNet)
		if !hostNet {
			return "", files, nil
		}
		if m.net != nil {
			ep, err := m.net.AttachWith(ctx, network.AttachRequest{ContainerID: rec.ID, Name: strings.TrimPrefix(rec.Name, "/"), Network: network.HostNetwork})
			if err != nil {
				return "", nil, err
			}
			rec.Networks = map[string]*NetworkAttachment{network.HostNetwork: {Endpoint: ep}}
		}
		return "host", files, nil
	case netJoin:
		m.mu.Lock()
		var other *Container
		if c := m.byID[plan.join]; c != nil {
			other = c.rec.clone()
		}
		m.mu.Unlock()
		if other == nil {
			return "", nil, fmt.Errorf("network mode container:%s: %w", plan.join, ErrNotFound)
		}
		hosts, err := os.ReadFile(other.HostsPath)
		if err != nil {
			return "", nil, err
		}
		resolv, err := os.ReadFile(other.ResolvConfPath)
		if err != nil {
			return "", nil, err
		}
		files[rec.HostsPath], files[rec.ResolvConfPath] = hosts, resolv
		if other.NetNSPath == "" {
			return "host", files, nil
		}
		return other.NetNSPath, files, nil
	}
	rec.NetNSPath = filepath.Join(m.runRoot, "netns", rec.ID)
	rec.Networks = map[string]*NetworkAttachment{}
	for n, cfg := range plan.configs {
		rec.Networks[n] = &NetworkAttachment{Config: cfg}
	}
	if _, err := m.ensureNetwork(ctx, rec); err != nil {
		return "", nil, err
	}
	files[rec.HostsPath], files[rec.ResolvConfPath] = m.netFiles(rec)
	return rec.NetNSPath, files, nil
}

// joinTarget resolves the container whose namespace "container:<ref>"
// joins: one with a namespace of its own, or on the host network.
func (m *Manager) joinTarget(ref string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.lookupLocked(ref)
	if err != nil {
		return "", err
	}
	if c.rec.NetNSPath == "" && primaryNetwork(c.rec.HostConfig.NetworkMode) != network.HostNetwork {
		return "", fmt.Errorf("%w: container %s has no network namespace to join", ErrInvalid, c.rec.ID)
	}
	return c.rec.ID, nil
}
