package network

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// stateFileName is the file under Config.Root holding networks and endpoints.
const stateFileName = "network.json"

// stateVersion is the layout version of the state file.
const stateVersion = 1

// fallbackDNS is used when the agent's resolv.conf names no resolver.
var fallbackDNS = []netip.Addr{netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("8.8.4.4")}

// validName is dockerd's rule for network names.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

type stateFile struct {
	Version   int         `json:"version"`
	Networks  []*Network  `json:"networks"`
	Endpoints []*Endpoint `json:"endpoints"`
}

// Manager owns berth's networks and container endpoints in the agent's
// network namespace. Its methods are safe for concurrent use.
type Manager struct {
	cfg       Config
	log       *slog.Logger
	dp        dataplane
	statePath string
	upstreams []netip.AddrPort // what the embedded DNS forwards to
	agentConf ResolvConf       // the agent's resolv.conf
	hostGW    netip.Addr

	mu   sync.Mutex
	nets map[string]*Network // by ID
	eps  []*Endpoint
	dns  map[string]*dnsServer // by network ID
	// closed is set by Close; later calls fail with ErrClosed.
	closed bool

	recMu   sync.RWMutex
	records map[string]map[string][]netip.Addr // network ID → name → addresses
}

// Open loads the state under cfg.Root, creates the default network on first
// use and reconciles the kernel with the state: missing bridges and the
// nftables table are recreated, endpoints whose namespace is gone are dropped
// and those whose veth vanished are re-attached.
func Open(ctx context.Context, cfg Config) (*Manager, error) {
	dp, err := newDataplane()
	if err != nil {
		return nil, err
	}
	m, err := open(ctx, cfg, dp)
	if err != nil {
		dp.close()
		return nil, err
	}
	return m, nil
}

func open(ctx context.Context, cfg Config, dp dataplane) (*Manager, error) {
	if cfg.Root == "" {
		return nil, fmt.Errorf("network config: empty Root: %w", ErrInvalid)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if !cfg.DefaultSubnet.IsValid() {
		cfg.DefaultSubnet = netip.MustParsePrefix(DefaultSubnet)
	}
	sub, err := validSubnet(cfg.DefaultSubnet)
	if err != nil {
		return nil, fmt.Errorf("network config: %w", err)
	}
	cfg.DefaultSubnet = sub
	if cfg.BridgeName == "" {
		cfg.BridgeName = DefaultBridgeName
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.AddressPools == nil {
		cfg.AddressPools = DefaultAddressPools
	}
	if cfg.DNSPort == 0 {
		cfg.DNSPort = 53
	}
	if cfg.ResolvConfPath == "" {
		cfg.ResolvConfPath = "/etc/resolv.conf"
	}
	if err := os.MkdirAll(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("network state dir: %w", err)
	}
	m := &Manager{
		cfg: cfg, log: cfg.Logger, dp: dp,
		statePath: filepath.Join(cfg.Root, stateFileName),
		nets:      map[string]*Network{},
		dns:       map[string]*dnsServer{},
		records:   map[string]map[string][]netip.Addr{},
	}
	m.loadResolvers()
	if err := m.load(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.reconcile(ctx); err != nil {
		m.stopDNSLocked()
		return nil, err
	}
	return m, nil
}

// loadResolvers reads the agent's resolv.conf and picks the upstreams.
func (m *Manager) loadResolvers() {
	if data, err := os.ReadFile(m.cfg.ResolvConfPath); err == nil {
		m.agentConf = ParseResolvConf(data)
	} else {
		m.log.Warn("network: reading resolv.conf", "err", err)
	}
	ups := m.cfg.DNS
	if ups == nil {
		ups = m.agentConf.Nameservers
	}
	if len(ups) == 0 {
		ups = fallbackDNS
	}
	for _, a := range ups {
		m.upstreams = append(m.upstreams, netip.AddrPortFrom(a, 53))
	}
}

func (m *Manager) load() error {
	data, err := os.ReadFile(m.statePath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("network state: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("network state %s: %w", m.statePath, err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("network state %s: version %d: %w", m.statePath, st.Version, ErrInvalid)
	}
	for _, n := range st.Networks {
		m.nets[n.ID] = n
	}
	for _, e := range st.Endpoints {
		if m.nets[e.NetworkID] != nil {
			m.eps = append(m.eps, e)
		}
	}
	return nil
}

// saveLocked writes the state file atomically.
func (m *Manager) saveLocked() error {
	st := stateFile{Version: stateVersion, Endpoints: m.eps}
	for _, n := range m.nets {
		st.Networks = append(st.Networks, n)
	}
	sort.Slice(st.Networks, func(i, j int) bool { return st.Networks[i].Name < st.Networks[j].Name })
	data, err := json.MarshalIndent(&st, "", "  ")
	if err != nil {
		return fmt.Errorf("network state: %w", err)
	}
	return writeFileAtomic(m.statePath, data, 0o600)
}

// reconcile brings the kernel in line with the loaded state.
func (m *Manager) reconcile(ctx context.Context) error {
	def := m.byNameLocked(DefaultNetwork)
	if def == nil {
		def = &Network{ID: newID(), Name: DefaultNetwork, Driver: "bridge", Created: time.Now().UTC()}
		m.nets[def.ID] = def
	}
	if def.Bridge != m.cfg.BridgeName || def.Subnet != m.cfg.DefaultSubnet {
		if def.Bridge != "" && len(m.endpointsLocked(def.ID)) > 0 {
			m.log.Warn("network: default bridge settings changed while containers are attached; keeping the old ones",
				"bridge", def.Bridge, "subnet", def.Subnet)
		} else {
			if def.Bridge != "" && def.Bridge != m.cfg.BridgeName {
				if err := m.dp.deleteBridge(def.Bridge); err != nil {
					return err
				}
			}
			def.Bridge, def.Subnet, def.Gateway = m.cfg.BridgeName, m.cfg.DefaultSubnet, firstHost(m.cfg.DefaultSubnet)
		}
	}
	m.hostGW = m.cfg.HostGatewayIP
	if !m.hostGW.IsValid() {
		m.hostGW = def.Gateway
	}
	for _, n := range m.sortedNetsLocked() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := m.dp.ensureBridge(n.Bridge, netip.PrefixFrom(n.Gateway, n.Subnet.Bits()), m.cfg.MTU); err != nil {
			return err
		}
	}
	if err := m.dp.enableForwarding(); err != nil {
		return err
	}
	if err := m.applyRulesLocked(); err != nil {
		return err
	}
	kept := m.eps[:0]
	for _, e := range m.eps {
		if m.reconcileEndpoint(e) {
			kept = append(kept, e)
		}
	}
	clear(m.eps[len(kept):])
	m.eps = kept
	var bridges []string
	for _, n := range m.nets {
		bridges = append(bridges, n.Bridge)
	}
	keep := map[string]bool{}
	for _, e := range m.eps {
		keep[e.HostIfName] = true
	}
	if err := m.dp.sweepPorts(bridges, keep); err != nil {
		m.log.Warn("network: removing stale veths", "err", err)
	}
	for _, n := range m.sortedNetsLocked() {
		if err := m.startDNSLocked(n); err != nil {
			return err
		}
	}
	m.rebuildRecordsLocked()
	return m.saveLocked()
}

// reconcileEndpoint keeps, repairs or drops one endpoint; false drops it.
func (m *Manager) reconcileEndpoint(e *Endpoint) bool {
	log := m.log.With("container", e.ContainerID, "network", e.Network)
	if !m.dp.netnsAlive(e.NetNSPath) {
		log.Info("network: dropping endpoint of a gone namespace", "netns", e.NetNSPath, "ip", e.IP)
		if err := m.dp.detach(e.HostIfName); err != nil {
			log.Warn("network: removing stale veth", "err", err)
		}
		return false
	}
	n := m.nets[e.NetworkID]
	ok, err := m.dp.repairPort(e.HostIfName, n.Bridge)
	if err == nil && ok {
		return true
	}
	if err := m.dp.attach(m.planLocked(n, e)); err != nil {
		log.Warn("network: re-attaching endpoint failed; dropping it", "err", err)
		_ = m.dp.detach(e.HostIfName)
		return false
	}
	log.Info("network: re-attached endpoint", "ip", e.IP)
	return true
}

// Close stops the DNS servers. Bridges, rules and endpoints stay, so that
// running containers keep their network across an agent restart.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.stopDNSLocked()
	m.dp.close()
	return nil
}

func (m *Manager) stopDNSLocked() {
	for id, s := range m.dns {
		s.close()
		delete(m.dns, id)
	}
}

// startDNSLocked starts the embedded DNS server of n on its gateway.
func (m *Manager) startDNSLocked(n *Network) error {
	if m.dns[n.ID] != nil {
		return nil
	}
	ap := netip.AddrPortFrom(n.Gateway, uint16(m.cfg.DNSPort))
	udp, tcp, err := m.dp.listen(ap)
	if err != nil {
		return fmt.Errorf("network %s: dns on %s: %w", n.Name, ap, err)
	}
	id := n.ID
	s := &dnsServer{
		log:       m.log.With("network", n.Name),
		resolve:   func(name string) []netip.Addr { return m.lookup(id, name) },
		upstreams: func() []netip.AddrPort { return m.upstreams },
	}
	s.serve(udp, tcp)
	m.dns[n.ID] = s
	return nil
}

// lookup answers the embedded DNS server of network netID.
func (m *Manager) lookup(netID, name string) []netip.Addr {
	if name == HostGatewayName && m.hostGW.IsValid() {
		return []netip.Addr{m.hostGW}
	}
	m.recMu.RLock()
	defer m.recMu.RUnlock()
	return slices.Clone(m.records[netID][name])
}

// rebuildRecordsLocked recomputes the DNS names of every user-defined
// network: container name, aliases, full and short ID, each also with the
// network's name as a domain. The default bridge has none, as in dockerd.
func (m *Manager) rebuildRecordsLocked() {
	recs := map[string]map[string][]netip.Addr{}
	for _, e := range m.eps {
		n := m.nets[e.NetworkID]
		if n == nil || n.Name == DefaultNetwork || !e.IP.IsValid() {
			continue
		}
		r := recs[n.ID]
		if r == nil {
			r = map[string][]netip.Addr{}
			recs[n.ID] = r
		}
		add := func(name string) {
			if !slices.Contains(r[name], e.IP) {
				r[name] = append(r[name], e.IP)
			}
		}
		names := append([]string{e.ContainerName, e.ContainerID, shortID(e.ContainerID)}, e.Aliases...)
		for _, name := range names {
			name = strings.ToLower(strings.TrimPrefix(name, "/"))
			if name == "" {
				continue
			}
			add(name)
			add(name + "." + strings.ToLower(n.Name))
		}
	}
	m.recMu.Lock()
	m.records = recs
	m.recMu.Unlock()
}

func (m *Manager) applyRulesLocked() error {
	var nn []natNetwork
	for _, n := range m.nets {
		nn = append(nn, natNetwork{Bridge: n.Bridge, Subnet: n.Subnet, Internal: n.Internal})
	}
	return m.dp.applyRules(planRules(nn))
}

func (m *Manager) sortedNetsLocked() []*Network {
	var ns []*Network
	for _, n := range m.nets {
		ns = append(ns, n)
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i].Name < ns[j].Name })
	return ns
}

// byNameLocked finds a network by name, full ID or unique ID prefix.
func (m *Manager) byNameLocked(ref string) *Network {
	if ref == "" {
		return nil
	}
	var prefixed []*Network
	for _, n := range m.nets {
		if n.Name == ref || n.ID == ref {
			return n
		}
		if strings.HasPrefix(n.ID, ref) {
			prefixed = append(prefixed, n)
		}
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	return nil
}

func (m *Manager) endpointsLocked(netID string) []*Endpoint {
	var out []*Endpoint
	for _, e := range m.eps {
		if e.NetworkID == netID {
			out = append(out, e)
		}
	}
	return out
}

// Create makes a user-defined bridge network.
func (m *Manager) Create(ctx context.Context, name string, opts CreateOptions) (Network, error) {
	if err := ctx.Err(); err != nil {
		return Network{}, err
	}
	if isPredefined(name) {
		return Network{}, fmt.Errorf("create network %s: %w", name, ErrPredefined)
	}
	if !validName.MatchString(name) {
		return Network{}, fmt.Errorf("create network %q: invalid name: %w", name, ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Network{}, ErrClosed
	}
	for _, n := range m.nets {
		if n.Name == name {
			return Network{}, fmt.Errorf("create network %s: %w", name, ErrExists)
		}
	}
	var used []netip.Prefix
	for _, n := range m.nets {
		used = append(used, n.Subnet)
	}
	subnet := opts.Subnet
	if subnet.IsValid() {
		var err error
		if subnet, err = validSubnet(subnet); err != nil {
			return Network{}, fmt.Errorf("create network %s: %w", name, err)
		}
		if overlapsAny(subnet, used) {
			return Network{}, fmt.Errorf("create network %s: subnet %s: %w", name, subnet, ErrOverlap)
		}
	} else {
		routes, err := m.dp.routes()
		if err != nil {
			return Network{}, fmt.Errorf("create network %s: %w", name, err)
		}
		if subnet, err = pickSubnet(m.cfg.AddressPools, append(used, routes...)); err != nil {
			return Network{}, fmt.Errorf("create network %s: %w", name, err)
		}
	}
	gw := opts.Gateway
	if gw.IsValid() {
		if !subnet.Contains(gw) || gw == subnet.Addr() || gw == broadcast(subnet) {
			return Network{}, fmt.Errorf("create network %s: gateway %s not usable in %s: %w", name, gw, subnet, ErrInvalid)
		}
	} else {
		gw = firstHost(subnet)
	}
	id := newID()
	n := &Network{
		ID: id, Name: name, Driver: "bridge", Bridge: "br-" + id[:12],
		Subnet: subnet, Gateway: gw, Internal: opts.Internal, Labels: opts.Labels,
		Created: time.Now().UTC(),
	}
	m.nets[id] = n
	err := m.dp.ensureBridge(n.Bridge, netip.PrefixFrom(gw, subnet.Bits()), m.cfg.MTU)
	if err == nil {
		err = m.applyRulesLocked()
	}
	if err == nil {
		err = m.startDNSLocked(n)
	}
	if err == nil {
		err = m.saveLocked()
	}
	if err != nil {
		m.removeNetLocked(n)
		return Network{}, fmt.Errorf("create network %s: %w", name, err)
	}
	m.log.Info("network: created", "network", name, "subnet", subnet, "bridge", n.Bridge)
	return m.copyLocked(n, false), nil
}

// removeNetLocked undoes everything of n (best effort) and forgets it.
func (m *Manager) removeNetLocked(n *Network) {
	if s := m.dns[n.ID]; s != nil {
		s.close()
		delete(m.dns, n.ID)
	}
	delete(m.nets, n.ID)
	if err := m.dp.deleteBridge(n.Bridge); err != nil {
		m.log.Warn("network: deleting bridge", "bridge", n.Bridge, "err", err)
	}
	if err := m.applyRulesLocked(); err != nil {
		m.log.Warn("network: updating rules", "err", err)
	}
}

// Remove deletes a user-defined network without endpoints.
func (m *Manager) Remove(ctx context.Context, ref string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if isPredefined(ref) {
		return fmt.Errorf("remove network %s: %w", ref, ErrPredefined)
	}
	n := m.byNameLocked(ref)
	if n == nil {
		return fmt.Errorf("remove network %s: %w", ref, ErrNotFound)
	}
	if n.Name == DefaultNetwork {
		return fmt.Errorf("remove network %s: %w", ref, ErrPredefined)
	}
	if eps := m.endpointsLocked(n.ID); len(eps) > 0 {
		return fmt.Errorf("remove network %s: %d endpoints: %w", n.Name, len(eps), ErrInUse)
	}
	if s := m.dns[n.ID]; s != nil {
		s.close()
		delete(m.dns, n.ID)
	}
	delete(m.nets, n.ID)
	if err := m.dp.deleteBridge(n.Bridge); err != nil {
		m.nets[n.ID] = n
		if derr := m.startDNSLocked(n); derr != nil {
			m.log.Warn("network: restarting dns", "network", n.Name, "err", derr)
		}
		return fmt.Errorf("remove network %s: %w", n.Name, err)
	}
	if err := m.applyRulesLocked(); err != nil {
		return fmt.Errorf("remove network %s: %w", n.Name, err)
	}
	m.log.Info("network: removed", "network", n.Name)
	return m.saveLocked()
}

// List returns all networks, the pseudo-networks host and none included,
// sorted by name.
func (m *Manager) List() []Network {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []Network{pseudo(HostNetwork), pseudo(NoneNetwork)}
	for _, n := range m.nets {
		out = append(out, m.copyLocked(n, false))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Inspect returns one network (by name, ID or unique ID prefix) with its
// endpoints.
func (m *Manager) Inspect(ref string) (Network, error) {
	if ref == HostNetwork || ref == NoneNetwork {
		return pseudo(ref), nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.byNameLocked(ref)
	if n == nil {
		for _, p := range []string{HostNetwork, NoneNetwork} {
			if q := pseudo(p); strings.HasPrefix(q.ID, ref) && ref != "" {
				return q, nil
			}
		}
		return Network{}, fmt.Errorf("network %s: %w", ref, ErrNotFound)
	}
	return m.copyLocked(n, true), nil
}

func (m *Manager) copyLocked(n *Network, withEndpoints bool) Network {
	c := *n
	c.Labels = cloneMap(n.Labels)
	c.Endpoints = nil
	if withEndpoints {
		for _, e := range m.endpointsLocked(n.ID) {
			c.Endpoints = append(c.Endpoints, cloneEndpoint(e))
		}
	}
	return c
}

// Attach connects a container's network namespace (netnsPath) to a network
// and returns the endpoint. On "host" it does nothing; on "none" it only
// brings up loopback. Attaching a container twice to one network returns the
// existing endpoint. name and aliases are resolvable by the other containers
// of a user-defined network.
func (m *Manager) Attach(ctx context.Context, containerID, name, netnsPath, network string, aliases []string) (Endpoint, error) {
	return m.AttachWith(ctx, AttachRequest{ContainerID: containerID, Name: name, NetNSPath: netnsPath, Network: network, Aliases: aliases})
}

// AttachRequest describes an endpoint for AttachWith.
type AttachRequest struct {
	ContainerID string
	Name        string   // container name; a leading "/" is dropped
	NetNSPath   string   // the container's network namespace
	Network     string   // network name, ID or unique ID prefix
	Aliases     []string // extra DNS names on user-defined networks
	// IP asks for a fixed address (docker run --ip); zero allocates one.
	// Only user-defined networks accept it, as in dockerd.
	IP netip.Addr
}

// AttachWith is Attach with every option.
func (m *Manager) AttachWith(ctx context.Context, req AttachRequest) (Endpoint, error) {
	containerID, name, netnsPath, network, aliases := req.ContainerID, req.Name, req.NetNSPath, req.Network, req.Aliases
	if err := ctx.Err(); err != nil {
		return Endpoint{}, err
	}
	if containerID == "" {
		return Endpoint{}, fmt.Errorf("attach: empty container ID: %w", ErrInvalid)
	}
	switch network {
	case HostNetwork:
		return Endpoint{ContainerID: containerID, ContainerName: name, Network: HostNetwork, NetworkID: pseudo(HostNetwork).ID}, nil
	case NoneNetwork:
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.closed {
			return Endpoint{}, ErrClosed
		}
		if err := m.dp.attachNone(netnsPath); err != nil {
			return Endpoint{}, fmt.Errorf("attach %s to none: %w", containerID, err)
		}
		return Endpoint{ContainerID: containerID, ContainerName: name, Network: NoneNetwork, NetworkID: pseudo(NoneNetwork).ID, NetNSPath: netnsPath}, nil
	}
	if netnsPath == "" {
		return Endpoint{}, fmt.Errorf("attach %s: empty netns path: %w", containerID, ErrInvalid)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Endpoint{}, ErrClosed
	}
	n := m.byNameLocked(network)
	if n == nil {
		return Endpoint{}, fmt.Errorf("attach %s: network %s: %w", containerID, network, ErrNotFound)
	}
	used := map[netip.Addr]bool{}
	ifUsed := map[string]bool{}
	hasDefault := false
	for _, e := range m.eps {
		if e.ContainerID == containerID {
			if e.NetworkID == n.ID {
				return cloneEndpoint(e), nil
			}
			ifUsed[e.IfName] = true
			hasDefault = hasDefault || e.DefaultRoute
		}
		if e.NetworkID == n.ID {
			used[e.IP] = true
		}
	}
	ip, last := req.IP, n.LastIP
	switch {
	case ip.IsValid() && n.Name == DefaultNetwork:
		return Endpoint{}, fmt.Errorf("attach %s: a fixed address needs a user-defined network: %w", containerID, ErrInvalid)
	case ip.IsValid():
		if err := checkRequestedIP(n.Subnet, n.Gateway, ip, used); err != nil {
			return Endpoint{}, fmt.Errorf("attach %s to %s: %w", containerID, n.Name, err)
		}
	default:
		var err error
		if ip, err = allocateIP(n.Subnet, n.Gateway, n.LastIP, used); err != nil {
			return Endpoint{}, fmt.Errorf("attach %s to %s: %w", containerID, n.Name, err)
		}
		last = ip
	}
	ifName := ""
	for i := 0; ifName == ""; i++ {
		if c := fmt.Sprintf("eth%d", i); !ifUsed[c] {
			ifName = c
		}
	}
	e := &Endpoint{
		ContainerID: containerID, ContainerName: strings.TrimPrefix(name, "/"),
		Network: n.Name, NetworkID: n.ID, Aliases: slices.Clone(aliases),
		NetNSPath: netnsPath, IfName: ifName, HostIfName: hostIfName(containerID, n.ID),
		IP: ip, Subnet: n.Subnet, Gateway: n.Gateway, MAC: macFromIP(ip).String(),
		DefaultRoute: !hasDefault,
	}
	if err := m.dp.attach(m.planLocked(n, e)); err != nil {
		return Endpoint{}, fmt.Errorf("attach %s to %s: %w", containerID, n.Name, err)
	}
	prevLast := n.LastIP
	n.LastIP = last
	m.eps = append(m.eps, e)
	if err := m.saveLocked(); err != nil {
		m.eps = m.eps[:len(m.eps)-1]
		n.LastIP = prevLast
		_ = m.dp.detach(e.HostIfName)
		return Endpoint{}, fmt.Errorf("attach %s to %s: %w", containerID, n.Name, err)
	}
	m.rebuildRecordsLocked()
	m.log.Info("network: attached", "container", containerID, "network", n.Name, "ip", ip, "if", ifName)
	return cloneEndpoint(e), nil
}

func (m *Manager) planLocked(n *Network, e *Endpoint) attachPlan {
	return attachPlan{
		HostIf: e.HostIfName, Bridge: n.Bridge, NetNSPath: e.NetNSPath, IfName: e.IfName,
		MAC: macFromIP(e.IP), Addr: netip.PrefixFrom(e.IP, n.Subnet.Bits()),
		Gateway: n.Gateway, DefaultRoute: e.DefaultRoute, MTU: m.cfg.MTU,
	}
}

// Detach disconnects a container from one network, removing its veth and
// freeing its address. host and none need no detaching.
func (m *Manager) Detach(ctx context.Context, containerID, network string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if network == HostNetwork || network == NoneNetwork {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	n := m.byNameLocked(network)
	if n == nil {
		return fmt.Errorf("detach %s: network %s: %w", containerID, network, ErrNotFound)
	}
	for i, e := range m.eps {
		if e.ContainerID == containerID && e.NetworkID == n.ID {
			return m.detachLocked(i)
		}
	}
	return fmt.Errorf("detach %s from %s: endpoint: %w", containerID, n.Name, ErrNotFound)
}

// DetachAll disconnects a container from every network (container removal
// or stop). A container without endpoints is not an error.
func (m *Manager) DetachAll(ctx context.Context, containerID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	var errs []error
	for i := 0; i < len(m.eps); {
		if m.eps[i].ContainerID != containerID {
			i++
			continue
		}
		if err := m.detachLocked(i); err != nil {
			errs = append(errs, err)
			i++
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) detachLocked(i int) error {
	e := m.eps[i]
	if err := m.dp.detach(e.HostIfName); err != nil {
		return fmt.Errorf("detach %s from %s: %w", e.ContainerID, e.Network, err)
	}
	m.eps = slices.Delete(m.eps, i, i+1)
	m.rebuildRecordsLocked()
	m.log.Info("network: detached", "container", e.ContainerID, "network", e.Network, "ip", e.IP)
	return m.saveLocked()
}

// Endpoints returns a container's endpoints, the default-route one first.
func (m *Manager) Endpoints(containerID string) []Endpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Endpoint
	for _, e := range m.eps {
		if e.ContainerID == containerID {
			out = append(out, cloneEndpoint(e))
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].DefaultRoute && !out[j].DefaultRoute })
	return out
}

// HostGateway is the address host.docker.internal stands for.
func (m *Manager) HostGateway() netip.Addr { return m.hostGW }

// ResolvConf returns the resolv.conf for a container whose first network is
// network (name, ID or unique ID prefix):
//   - user-defined networks: the embedded DNS server on the gateway, which
//     resolves container names, with options ndots:0 as dockerd writes;
//   - the default bridge (and an unknown network): the agent's non-loopback
//     resolvers, or the gateway's forwarder when the agent has only loopback
//     ones (e.g. a local caching resolver);
//   - none: the agent's non-loopback resolvers, possibly none;
//   - host: the agent's resolv.conf as it is.
//
// Search domains and options come from the agent's resolv.conf.
func (m *Manager) ResolvConf(network string) ResolvConf {
	rc := ResolvConf{Search: slices.Clone(m.agentConf.Search), Options: slices.Clone(m.agentConf.Options)}
	if network == HostNetwork {
		rc.Nameservers = slices.Clone(m.agentConf.Nameservers)
		return rc
	}
	for _, up := range m.upstreams {
		if !up.Addr().IsLoopback() {
			rc.Nameservers = append(rc.Nameservers, up.Addr())
		}
	}
	if network == NoneNetwork {
		return rc
	}
	m.mu.Lock()
	n := m.byNameLocked(network)
	if n == nil {
		n = m.byNameLocked(DefaultNetwork)
	}
	m.mu.Unlock()
	if n.Name != DefaultNetwork {
		rc.Nameservers = []netip.Addr{n.Gateway}
		if !slices.ContainsFunc(rc.Options, func(o string) bool { return strings.HasPrefix(o, "ndots:") }) {
			rc.Options = append(rc.Options, "ndots:0")
		}
		return rc
	}
	if len(rc.Nameservers) == 0 {
		rc.Nameservers = []netip.Addr{n.Gateway}
	}
	return rc
}

func isPredefined(name string) bool {
	return name == DefaultNetwork || name == HostNetwork || name == NoneNetwork
}

// pseudo describes the host and none pseudo-networks, with IDs stable across
// restarts.
func pseudo(name string) Network {
	driver := "host"
	if name == NoneNetwork {
		driver = "null"
	}
	sum := sha256.Sum256([]byte("berth-network-" + name))
	return Network{ID: hex.EncodeToString(sum[:]), Name: name, Driver: driver}
}

func newID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// hostIfName names the host side of a container's veth: "veth" and 11 hex
// digits of a hash of container and network (15 bytes, the kernel's limit).
func hostIfName(containerID, networkID string) string {
	sum := sha256.Sum256([]byte(containerID + "/" + networkID))
	return "veth" + hex.EncodeToString(sum[:])[:11]
}

func cloneEndpoint(e *Endpoint) Endpoint {
	c := *e
	c.Aliases = slices.Clone(e.Aliases)
	return c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
