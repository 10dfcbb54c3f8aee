package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"

	berthnet "github.com/berth-dev/berth/guestagent/network"
	"github.com/berth-dev/berth/guestagent/runtime/container"
)

// NetworkService is what the engine needs of the network manager;
// *network.Manager implements it.
type NetworkService interface {
	Create(ctx context.Context, name string, opts berthnet.CreateOptions) (berthnet.Network, error)
	Remove(ctx context.Context, ref string) error
	List() []berthnet.Network
	Inspect(ref string) (berthnet.Network, error)
}

var _ NetworkService = (*berthnet.Manager)(nil)

// NetworkConnector is an optional capability of a ContainerService that
// connects containers to networks after their creation (docker network
// connect and disconnect); *container.Manager implements it.
type NetworkConnector interface {
	ConnectNetwork(ctx context.Context, ref, network string, cfg container.EndpointConfig) (*container.Container, error)
	DisconnectNetwork(ctx context.Context, ref, network string, force bool) error
}

var _ NetworkConnector = (*container.Manager)(nil)

var errNoNetworks = fmt.Errorf("this engine has no network manager (an agent in the host's network namespace creates no bridges unless started with --bridge): %w", ErrUnavailable)

func (s *Server) networkRoutes(mux *http.ServeMux) {
	s.handle(mux, "GET /networks", s.getNetworks)
	s.handle(mux, "GET /networks/{id}", s.getNetwork)
	s.handle(mux, "POST /networks/create", s.postNetworksCreate)
	s.handle(mux, "POST /networks/prune", s.postNetworksPrune)
	s.handle(mux, "DELETE /networks/{id}", s.deleteNetwork)
	s.handle(mux, "POST /networks/{id}/connect", s.postNetworkConnect)
	s.handle(mux, "POST /networks/{id}/disconnect", s.postNetworkDisconnect)
}

// networkService returns the network manager or errNoNetworks.
func (s *Server) networkService() (NetworkService, error) {
	if s.networks == nil {
		return nil, errNoNetworks
	}
	return s.networks, nil
}

// noSuchNetwork words a not-found error as dockerd does.
func (s *Server) noSuchNetwork(ref string, err error) error {
	if s.classes.statusOf(err) == http.StatusNotFound {
		return notFoundf("network %s not found", ref)
	}
	return err
}

func isPredefinedNetwork(name string) bool {
	return name == berthnet.DefaultNetwork || name == berthnet.HostNetwork || name == berthnet.NoneNetwork
}

// endpointID is a stable 64-hex ID for a container's endpoint on a network.
func endpointID(containerID, networkID string) string {
	sum := sha256.Sum256([]byte("endpoint/" + containerID + "/" + networkID))
	return hex.EncodeToString(sum[:])
}

// sandboxID is a stable 64-hex ID for a container's network namespace.
func sandboxID(containerID string) string {
	sum := sha256.Sum256([]byte("sandbox/" + containerID))
	return hex.EncodeToString(sum[:])
}

func hardwareAddr(s string) network.HardwareAddr {
	mac, err := net.ParseMAC(s)
	if err != nil {
		return nil
	}
	return network.HardwareAddr(mac)
}

// endpointSettings renders a container's attachment as inspect shows it.
func endpointSettings(c *container.Container, a *container.NetworkAttachment) *network.EndpointSettings {
	ep := a.Endpoint
	es := &network.EndpointSettings{
		Aliases:    slices.Clone(ep.Aliases),
		NetworkID:  ep.NetworkID,
		Gateway:    ep.Gateway,
		IPAddress:  ep.IP,
		MacAddress: hardwareAddr(ep.MAC),
	}
	if es.Aliases == nil {
		es.Aliases = slices.Clone(a.Config.Aliases)
	}
	if ep.Subnet.IsValid() && ep.IP.IsValid() {
		es.IPPrefixLen = ep.Subnet.Bits()
	}
	if ep.NetworkID != "" {
		es.EndpointID = endpointID(c.ID, ep.NetworkID)
	}
	if a.Config.IPv4Address.IsValid() {
		es.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: a.Config.IPv4Address}
	}
	if ep.Network != "" && !isPredefinedNetwork(ep.Network) {
		es.DNSNames = []string{strings.TrimPrefix(c.Name, "/")}
		for _, n := range es.Aliases {
			if !slices.Contains(es.DNSNames, n) {
				es.DNSNames = append(es.DNSNames, n)
			}
		}
	}
	return es
}

// containerNetworks renders the Networks map of inspect and list.
func containerNetworks(c *container.Container) map[string]*network.EndpointSettings {
	out := map[string]*network.EndpointSettings{}
	for name, a := range c.Networks {
		out[name] = endpointSettings(c, a)
	}
	return out
}

// networkInspect renders a network as dockerd does; containers fill the
// Containers map of the pseudo-networks, whose endpoints the network
// manager does not track.
func networkInspect(n berthnet.Network, ctrs []*container.Container) network.Inspect {
	labels := n.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	out := network.Inspect{
		Network: network.Network{
			Name: n.Name, ID: n.ID, Created: n.Created, Scope: "local", Driver: n.Driver,
			EnableIPv4: true, Internal: n.Internal, Labels: labels, Options: map[string]string{},
			IPAM: network.IPAM{Driver: "default", Options: map[string]string{}, Config: []network.IPAMConfig{}},
		},
		Containers: map[string]network.EndpointResource{},
	}
	if n.Subnet.IsValid() {
		out.IPAM.Config = append(out.IPAM.Config, network.IPAMConfig{Subnet: n.Subnet, Gateway: n.Gateway})
	}
	if n.Name == berthnet.DefaultNetwork {
		out.Options = map[string]string{
			"com.docker.network.bridge.default_bridge":       "true",
			"com.docker.network.bridge.enable_icc":           "true",
			"com.docker.network.bridge.enable_ip_masquerade": "true",
			"com.docker.network.bridge.name":                 n.Bridge,
		}
	}
	for _, e := range n.Endpoints {
		out.Containers[e.ContainerID] = network.EndpointResource{
			Name: e.ContainerName, EndpointID: endpointID(e.ContainerID, e.NetworkID),
			MacAddress: hardwareAddr(e.MAC), IPv4Address: endpointPrefix(e),
		}
	}
	if n.Name == berthnet.HostNetwork || n.Name == berthnet.NoneNetwork {
		for _, c := range ctrs {
			if a := c.Networks[n.Name]; a != nil {
				out.Containers[c.ID] = network.EndpointResource{Name: strings.TrimPrefix(c.Name, "/"), EndpointID: endpointID(c.ID, n.ID)}
			}
		}
	}
	return out
}

// endpointPrefix is an endpoint's address with its subnet's length.
func endpointPrefix(e berthnet.Endpoint) netip.Prefix {
	if !e.IP.IsValid() || !e.Subnet.IsValid() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(e.IP, e.Subnet.Bits())
}

// allContainers lists every container, or none when the service fails.
func (s *Server) allContainers() []*container.Container {
	list, err := s.containers.List(container.ListOptions{All: true})
	if err != nil {
		return nil
	}
	return list
}

// matchNetwork applies Docker's network list filters.
func (f filters) matchNetwork(n network.Inspect) (bool, error) {
	for key, vals := range f {
		if len(vals) == 0 {
			continue
		}
		ok := false
		for _, v := range vals {
			switch key {
			case "name":
				ok = ok || strings.Contains(n.Name, v)
			case "id":
				ok = ok || strings.HasPrefix(n.ID, v)
			case "driver":
				ok = ok || n.Driver == v
			case "scope":
				ok = ok || n.Scope == v
			case "label":
				k, want, hasValue := strings.Cut(v, "=")
				got, present := n.Labels[k]
				ok = ok || (present && (!hasValue || got == want))
			case "type":
				switch v {
				case "custom":
					ok = ok || !isPredefinedNetwork(n.Name)
				case "builtin":
					ok = ok || isPredefinedNetwork(n.Name)
				default:
					return false, invalidf("invalid filter: 'type'='%s'", v)
				}
			case "dangling":
				want, err := strconv.ParseBool(v)
				if err != nil {
					return false, invalidf("invalid filter 'dangling=%s'", v)
				}
				ok = ok || (want == (len(n.Containers) == 0 && !isPredefinedNetwork(n.Name)))
			default:
				return false, invalidf("invalid filter '%s'", key)
			}
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

func (s *Server) getNetworks(w http.ResponseWriter, r *http.Request) error {
	ns, err := s.networkService()
	if err != nil {
		return err
	}
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return err
	}
	ctrs := s.allContainers()
	out := []network.Summary{}
	for _, n := range ns.List() {
		if full, err := ns.Inspect(n.ID); err == nil {
			n = full // with endpoints, for the dangling filter
		}
		ni := networkInspect(n, ctrs)
		ok, err := f.matchNetwork(ni)
		if err != nil {
			return err
		}
		if ok {
			out = append(out, network.Summary{Network: ni.Network})
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) getNetwork(w http.ResponseWriter, r *http.Request) error {
	ns, err := s.networkService()
	if err != nil {
		return err
	}
	ref := r.PathValue("id")
	n, err := ns.Inspect(ref)
	if err != nil {
		return s.noSuchNetwork(ref, err)
	}
	return writeJSON(w, http.StatusOK, networkInspect(n, s.allContainers()))
}

// createNetworkOptions checks a create request against what berth
// implements (one IPv4 subnet on a bridge) and translates it.
func createNetworkOptions(req network.CreateRequest) (berthnet.CreateOptions, []string, error) {
	opts := berthnet.CreateOptions{Internal: req.Internal, Labels: req.Labels}
	switch {
	case req.Name == "":
		return opts, nil, invalidf("invalid name: network name cannot be empty")
	case req.Driver != "" && req.Driver != "bridge":
		return opts, nil, invalidf("network driver %q is not supported by berth: only \"bridge\" is", req.Driver)
	case req.Scope != "" && req.Scope != "local":
		return opts, nil, invalidf("network scope %q is not supported by berth: only \"local\" is", req.Scope)
	case req.EnableIPv6 != nil && *req.EnableIPv6:
		return opts, nil, invalidf("IPv6 networks are not supported by berth")
	case req.EnableIPv4 != nil && !*req.EnableIPv4:
		return opts, nil, invalidf("IPv4 cannot be disabled on berth's networks")
	case req.Attachable || req.Ingress || req.ConfigOnly || req.ConfigFrom != nil:
		return opts, nil, invalidf("swarm and config-only networks are not supported by berth")
	}
	if ipam := req.IPAM; ipam != nil {
		if ipam.Driver != "" && ipam.Driver != "default" {
			return opts, nil, invalidf("IPAM driver %q is not supported by berth", ipam.Driver)
		}
		if len(ipam.Config) > 1 {
			return opts, nil, invalidf("berth's networks have one IPv4 subnet; %d IPAM configs given", len(ipam.Config))
		}
		if len(ipam.Config) == 1 {
			c := ipam.Config[0]
			switch {
			case c.IPRange.IsValid() || len(c.AuxAddress) > 0:
				return opts, nil, invalidf("IPAM ip-range and aux-address are not supported by berth")
			case c.Subnet.IsValid() && !c.Subnet.Addr().Is4():
				return opts, nil, invalidf("IPv6 subnet %s is not supported by berth", c.Subnet)
			case c.Gateway.IsValid() && !c.Subnet.IsValid():
				return opts, nil, invalidf("a gateway needs a subnet")
			}
			opts.Subnet, opts.Gateway = c.Subnet, c.Gateway
		}
	}
	var warnings []string
	if len(req.Options) > 0 {
		keys := make([]string, 0, len(req.Options))
		for k := range req.Options {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		warnings = append(warnings, "berth ignored the driver options "+strings.Join(keys, ", "))
	}
	return opts, warnings, nil
}

func (s *Server) postNetworksCreate(w http.ResponseWriter, r *http.Request) error {
	ns, err := s.networkService()
	if err != nil {
		return err
	}
	var req network.CreateRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	opts, warnings, err := createNetworkOptions(req)
	if err != nil {
		return err
	}
	n, err := ns.Create(r.Context(), req.Name, opts)
	switch {
	case errors.Is(err, berthnet.ErrExists):
		return conflictf("network with name %s already exists", req.Name)
	case errors.Is(err, berthnet.ErrPredefined):
		return &classified{msg: fmt.Sprintf("operation is not permitted on predefined %s network", req.Name), class: ErrForbidden}
	case err != nil:
		return err
	}
	s.emit(events.NetworkEventType, events.ActionCreate, n.ID, map[string]string{"name": n.Name, "type": n.Driver})
	return writeJSON(w, http.StatusCreated, network.CreateResponse{ID: n.ID, Warning: strings.Join(warnings, "\n")})
}

func (s *Server) deleteNetwork(w http.ResponseWriter, r *http.Request) error {
	ns, err := s.networkService()
	if err != nil {
		return err
	}
	ref := r.PathValue("id")
	n, err := ns.Inspect(ref)
	if err != nil {
		return s.noSuchNetwork(ref, err)
	}
	if err := s.removeNetwork(r.Context(), ns, n); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// removeNetwork removes n, wording refusals as dockerd does, and emits the
// destroy event.
func (s *Server) removeNetwork(ctx context.Context, ns NetworkService, n berthnet.Network) error {
	if isPredefinedNetwork(n.Name) {
		return &classified{msg: fmt.Sprintf("%s is a pre-defined network and cannot be removed", n.Name), class: ErrForbidden}
	}
	err := ns.Remove(ctx, n.ID)
	switch {
	case errors.Is(err, berthnet.ErrInUse):
		return conflictf("error while removing network: network %s id %s has active endpoints", n.Name, n.ID)
	case err != nil:
		return s.noSuchNetwork(n.Name, err)
	}
	s.emit(events.NetworkEventType, events.ActionDestroy, n.ID, map[string]string{"name": n.Name, "type": n.Driver})
	return nil
}

func (s *Server) postNetworksPrune(w http.ResponseWriter, r *http.Request) error {
	ns, err := s.networkService()
	if err != nil {
		return err
	}
	f, err := parseFilters(r.URL.Query().Get("filters"))
	if err != nil {
		return err
	}
	until, err := untilFilter(f)
	if err != nil {
		return err
	}
	lf := filters{}
	for k, v := range f {
		switch k {
		case "until":
		case "label":
			lf[k] = v
		default:
			return invalidf("invalid filter '%s'", k)
		}
	}
	resp := network.PruneReport{NetworksDeleted: []string{}}
	for _, n := range ns.List() {
		if isPredefinedNetwork(n.Name) || (!until.IsZero() && !n.Created.Before(until)) {
			continue
		}
		if ok, _ := lf.matchNetwork(networkInspect(n, nil)); !ok {
			continue
		}
		full, err := ns.Inspect(n.ID)
		if err != nil || len(full.Endpoints) > 0 {
			continue
		}
		if err := s.removeNetwork(r.Context(), ns, n); err != nil {
			s.log.Warn("prune: remove network failed", "network", n.Name, "err", err)
			continue
		}
		resp.NetworksDeleted = append(resp.NetworksDeleted, n.Name)
	}
	return writeJSON(w, http.StatusOK, resp)
}

// connectTarget resolves the network and the connector of a connect or
// disconnect request.
func (s *Server) connectTarget(r *http.Request) (berthnet.Network, NetworkConnector, error) {
	ns, err := s.networkService()
	if err != nil {
		return berthnet.Network{}, nil, err
	}
	conn, ok := s.containers.(NetworkConnector)
	if !ok {
		return berthnet.Network{}, nil, fmt.Errorf("this engine's container manager cannot connect containers to networks: %w", ErrUnavailable)
	}
	ref := r.PathValue("id")
	n, err := ns.Inspect(ref)
	if err != nil {
		return berthnet.Network{}, nil, s.noSuchNetwork(ref, err)
	}
	return n, conn, nil
}

func (s *Server) postNetworkConnect(w http.ResponseWriter, r *http.Request) error {
	n, conn, err := s.connectTarget(r)
	if err != nil {
		return err
	}
	var req network.ConnectRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Container == "" {
		return invalidf("no container specified")
	}
	var cfg container.EndpointConfig
	if es := req.EndpointConfig; es != nil {
		cfg.Aliases = es.Aliases
		if es.IPAMConfig != nil {
			if es.IPAMConfig.IPv6Address.IsValid() {
				return invalidf("IPv6 addresses are not supported by berth")
			}
			cfg.IPv4Address = es.IPAMConfig.IPv4Address
		}
	}
	c, err := conn.ConnectNetwork(r.Context(), req.Container, n.Name, cfg)
	if err != nil {
		return s.noSuchContainer(req.Container, err)
	}
	s.emit(events.NetworkEventType, events.ActionConnect, n.ID, map[string]string{"name": n.Name, "type": n.Driver, "container": c.ID})
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) postNetworkDisconnect(w http.ResponseWriter, r *http.Request) error {
	n, conn, err := s.connectTarget(r)
	if err != nil {
		return err
	}
	var req network.DisconnectRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Container == "" {
		return invalidf("no container specified")
	}
	c, err := s.containers.Get(req.Container)
	if err != nil {
		return s.noSuchContainer(req.Container, err)
	}
	if err := conn.DisconnectNetwork(r.Context(), c.ID, n.Name, req.Force); err != nil {
		return s.noSuchContainer(req.Container, err)
	}
	s.emit(events.NetworkEventType, events.ActionDisconnect, n.ID, map[string]string{"name": n.Name, "type": n.Driver, "container": c.ID})
	w.WriteHeader(http.StatusOK)
	return nil
}

// emitConnects announces the networks a new container joined.
func (s *Server) emitConnects(c *container.Container) {
	names := make([]string, 0, len(c.Networks))
	for n := range c.Networks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		ep := c.Networks[name].Endpoint
		if ep.NetworkID == "" {
			continue
		}
		s.emit(events.NetworkEventType, events.ActionConnect, ep.NetworkID, map[string]string{"name": name, "type": networkDriver(name), "container": c.ID})
	}
}

func networkDriver(name string) string {
	switch name {
	case berthnet.HostNetwork:
		return "host"
	case berthnet.NoneNetwork:
		return "null"
	}
	return "bridge"
}
