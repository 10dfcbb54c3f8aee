package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"

	berthnet "github.com/berth-dev/berth/guestagent/network"
	"github.com/berth-dev/berth/guestagent/runtime/container"
)

// fakeNetworks is a NetworkService over a map, with bridge, host and none.
type fakeNetworks struct {
	mu      sync.Mutex
	nets    map[string]*berthnet.Network // by ID
	created []berthnet.CreateOptions
}

func newFakeNetworks() *fakeNetworks {
	f := &fakeNetworks{nets: map[string]*berthnet.Network{}}
	f.nets[strings.Repeat("b", 64)] = &berthnet.Network{ID: strings.Repeat("b", 64), Name: "bridge", Driver: "bridge", Bridge: "berth0",
		Subnet: netip.MustParsePrefix("172.17.0.0/16"), Gateway: netip.MustParseAddr("172.17.0.1")}
	f.nets[strings.Repeat("h", 64)] = &berthnet.Network{ID: strings.Repeat("h", 64), Name: "host", Driver: "host"}
	f.nets[strings.Repeat("e", 64)] = &berthnet.Network{ID: strings.Repeat("e", 64), Name: "none", Driver: "null"}
	return f
}

func (f *fakeNetworks) find(ref string) *berthnet.Network {
	for _, n := range f.nets {
		if n.Name == ref || n.ID == ref {
			return n
		}
	}
	for _, n := range f.nets {
		if ref != "" && strings.HasPrefix(n.ID, ref) {
			return n
		}
	}
	return nil
}

func (f *fakeNetworks) Create(ctx context.Context, name string, opts berthnet.CreateOptions) (berthnet.Network, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if isPredefinedNetwork(name) {
		return berthnet.Network{}, fmt.Errorf("create %s: %w", name, berthnet.ErrPredefined)
	}
	for _, n := range f.nets {
		if n.Name == name {
			return berthnet.Network{}, fmt.Errorf("create %s: %w", name, berthnet.ErrExists)
		}
	}
	if opts.Subnet == netip.MustParsePrefix("10.99.0.0/16") {
		return berthnet.Network{}, fmt.Errorf("create %s: subnet %s: %w", name, opts.Subnet, berthnet.ErrOverlap)
	}
	f.created = append(f.created, opts)
	id := fmt.Sprintf("%064x", len(f.nets)+0xabc)
	sub := opts.Subnet
	if !sub.IsValid() {
		sub = netip.MustParsePrefix("172.18.0.0/16")
	}
	n := &berthnet.Network{ID: id, Name: name, Driver: "bridge", Bridge: "br-" + id[:12], Subnet: sub, Gateway: sub.Addr().Next(),
		Internal: opts.Internal, Labels: opts.Labels, Created: time.Now()}
	f.nets[id] = n
	return *n, nil
}

func (f *fakeNetworks) Remove(ctx context.Context, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.find(ref)
	switch {
	case n == nil:
		return fmt.Errorf("remove %s: %w", ref, berthnet.ErrNotFound)
	case isPredefinedNetwork(n.Name):
		return fmt.Errorf("remove %s: %w", ref, berthnet.ErrPredefined)
	case len(n.Endpoints) > 0:
		return fmt.Errorf("remove %s: %w", ref, berthnet.ErrInUse)
	}
	delete(f.nets, n.ID)
	return nil
}

func (f *fakeNetworks) List() []berthnet.Network {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []berthnet.Network
	for _, n := range f.nets {
		c := *n
		c.Endpoints = nil
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (f *fakeNetworks) Inspect(ref string) (berthnet.Network, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := f.find(ref); n != nil {
		return *n, nil
	}
	return berthnet.Network{}, fmt.Errorf("network %s: %w", ref, berthnet.ErrNotFound)
}

// netContainers adds networking to fakeContainers.
type netContainers struct {
	*fakeContainers
	nets     *fakeNetworks
	connects []string // "container network aliases ip"
}

func (c *netContainers) ConnectNetwork(ctx context.Context, ref, net string, cfg container.EndpointConfig) (*container.Container, error) {
	ctr, err := c.Get(ref)
	if err != nil {
		return nil, err
	}
	c.connects = append(c.connects, fmt.Sprintf("%s %s %v %v", ctr.ID[:4], net, cfg.Aliases, cfg.IPv4Address))
	return ctr, nil
}

func (c *netContainers) DisconnectNetwork(ctx context.Context, ref, net string, force bool) error {
	ctr, err := c.Get(ref)
	if err != nil {
		return err
	}
	if ctr.Networks[net] == nil {
		return fmt.Errorf("disconnect: %w: not connected", container.ErrInvalid)
	}
	c.connects = append(c.connects, fmt.Sprintf("-%s %s", ctr.ID[:4], net))
	return nil
}

func newNetworkServer(t *testing.T, cs *netContainers) (*httptest.Server, *Server) {
	t.Helper()
	cfg := Config{Version: "test", Images: newFakeImages(fakeImage("img", "img:latest")), Containers: cs}
	if cs.nets != nil {
		cfg.Networks = cs.nets
	}
	eng := New(cfg)
	srv := httptest.NewServer(eng)
	t.Cleanup(func() { srv.Close(); eng.Close() })
	return srv, eng
}

func body(v any) *strings.Reader {
	b, _ := json.Marshal(v)
	return strings.NewReader(string(b))
}

func networkEvents(s *Server) []string {
	s.events.mu.Lock()
	defer s.events.mu.Unlock()
	var out []string
	for _, m := range s.events.recent {
		if m.Type == events.NetworkEventType {
			out = append(out, string(m.Action)+" "+m.Actor.Attributes["name"]+" "+m.Actor.Attributes["container"])
		}
	}
	return out
}

func TestNetworkCreateInspectListRemove(t *testing.T) {
	nets := newFakeNetworks()
	cs := &netContainers{fakeContainers: newFakeContainers(), nets: nets}
	srv, eng := newNetworkServer(t, cs)

	resp, out := do(t, "POST", srv.URL+"/networks/create", body(network.CreateRequest{
		Name: "mynet", Driver: "bridge", Internal: true, Labels: map[string]string{"team": "a"},
		IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix("10.9.0.0/24"), Gateway: netip.MustParseAddr("10.9.0.254")}}},
	}))
	var cr network.CreateResponse
	if err := json.Unmarshal(out, &cr); err != nil || resp.StatusCode != 201 || len(cr.ID) != 64 {
		t.Fatalf("create: %d %s", resp.StatusCode, out)
	}
	if o := nets.created[0]; o.Subnet.String() != "10.9.0.0/24" || o.Gateway.String() != "10.9.0.254" || !o.Internal || o.Labels["team"] != "a" {
		t.Fatalf("create options %+v", o)
	}
	for _, tc := range []struct {
		req    network.CreateRequest
		status int
	}{
		{network.CreateRequest{Name: "mynet"}, 409},
		{network.CreateRequest{Name: "bridge"}, 403},
		{network.CreateRequest{Name: ""}, 400},
		{network.CreateRequest{Name: "o", Driver: "overlay"}, 400},
		{network.CreateRequest{Name: "v6", EnableIPv6: new(true)}, 400},
		{network.CreateRequest{Name: "two", IPAM: &network.IPAM{Config: []network.IPAMConfig{{}, {}}}}, 400},
		{network.CreateRequest{Name: "overlap", IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix("10.99.0.0/16")}}}}, 400},
		{network.CreateRequest{Name: "gw", IPAM: &network.IPAM{Config: []network.IPAMConfig{{Gateway: netip.MustParseAddr("10.0.0.1")}}}}, 400},
	} {
		if resp, out := do(t, "POST", srv.URL+"/networks/create", body(tc.req)); resp.StatusCode != tc.status {
			t.Errorf("create %+v: %d %s, want %d", tc.req, resp.StatusCode, out, tc.status)
		}
	}

	resp, out = do(t, "GET", srv.URL+"/networks/mynet", nil)
	var ni network.Inspect
	if err := json.Unmarshal(out, &ni); err != nil || resp.StatusCode != 200 {
		t.Fatalf("inspect: %d %s", resp.StatusCode, out)
	}
	if ni.ID != cr.ID || ni.Driver != "bridge" || ni.Scope != "local" || !ni.Internal || len(ni.IPAM.Config) != 1 ||
		ni.IPAM.Config[0].Subnet.String() != "10.9.0.0/24" || ni.Labels["team"] != "a" || ni.Containers == nil {
		t.Fatalf("inspect: %s", out)
	}
	if resp, _ := do(t, "GET", srv.URL+"/networks/"+cr.ID[:6], nil); resp.StatusCode != 200 {
		t.Fatalf("inspect by prefix: %d", resp.StatusCode)
	}
	if resp, out := do(t, "GET", srv.URL+"/networks/nope", nil); resp.StatusCode != 404 || !strings.Contains(string(out), "network nope not found") {
		t.Fatalf("inspect missing: %d %s", resp.StatusCode, out)
	}

	list := func(f string) []string {
		t.Helper()
		u := srv.URL + "/networks"
		if f != "" {
			u += "?filters=" + url.QueryEscape(f)
		}
		resp, out := do(t, "GET", u, nil)
		var ns []network.Summary
		if err := json.Unmarshal(out, &ns); err != nil || resp.StatusCode != 200 {
			t.Fatalf("list %s: %d %s", f, resp.StatusCode, out)
		}
		var names []string
		for _, n := range ns {
			names = append(names, n.Name)
		}
		return names
	}
	for f, want := range map[string][]string{
		"":                           {"bridge", "host", "mynet", "none"},
		`{"name":{"net":true}}`:      {"mynet"},
		`{"driver":{"null":true}}`:   {"none"},
		`{"type":{"custom":true}}`:   {"mynet"},
		`{"type":{"builtin":true}}`:  {"bridge", "host", "none"},
		`{"label":{"team=a":true}}`:  {"mynet"},
		`{"label":{"team=b":true}}`:  nil,
		`{"dangling":{"true":true}}`: {"mynet"},
	} {
		if got := list(f); !slices.Equal(got, want) {
			t.Errorf("list %s = %v, want %v", f, got, want)
		}
	}
	if got := list(`{"id":{"` + cr.ID[:5] + `":true}}`); !slices.Equal(got, []string{"mynet"}) {
		t.Errorf("id filter: %v", got)
	}
	for _, f := range []string{`{"bogus":{"x":true}}`, `{"type":{"weird":true}}`} {
		if resp, _ := do(t, "GET", srv.URL+"/networks?filters="+url.QueryEscape(f), nil); resp.StatusCode != 400 {
			t.Errorf("filter %s: %d", f, resp.StatusCode)
		}
	}

	// Removal: predefined 403, in use 409, missing 404.
	for name, status := range map[string]int{"bridge": 403, "host": 403, "none": 403, "nope": 404} {
		if resp, out := do(t, "DELETE", srv.URL+"/networks/"+name, nil); resp.StatusCode != status {
			t.Errorf("delete %s: %d %s, want %d", name, resp.StatusCode, out, status)
		}
	}
	nets.nets[cr.ID].Endpoints = []berthnet.Endpoint{{ContainerID: "c1", NetworkID: cr.ID}}
	if resp, out := do(t, "DELETE", srv.URL+"/networks/mynet", nil); resp.StatusCode != 409 || !strings.Contains(string(out), "active endpoints") {
		t.Fatalf("delete in use: %d %s", resp.StatusCode, out)
	}
	if resp, _ := do(t, "POST", srv.URL+"/networks/prune", nil); resp.StatusCode != 200 || nets.find("mynet") == nil {
		t.Fatalf("prune removed a network in use: %d", resp.StatusCode)
	}
	nets.nets[cr.ID].Endpoints = nil
	if resp, _ := do(t, "DELETE", srv.URL+"/networks/mynet", nil); resp.StatusCode != 204 || nets.find("mynet") != nil {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	do(t, "POST", srv.URL+"/networks/create", body(network.CreateRequest{Name: "a", Labels: map[string]string{"k": "v"}}))
	do(t, "POST", srv.URL+"/networks/create", body(network.CreateRequest{Name: "b"}))
	resp, out = do(t, "POST", srv.URL+"/networks/prune?filters="+url.QueryEscape(`{"label":{"k":true}}`), nil)
	var pr network.PruneReport
	if err := json.Unmarshal(out, &pr); err != nil || resp.StatusCode != 200 || !slices.Equal(pr.NetworksDeleted, []string{"a"}) {
		t.Fatalf("prune: %d %s", resp.StatusCode, out)
	}
	want := []string{"create mynet ", "destroy mynet ", "create a ", "create b ", "destroy a "}
	if got := networkEvents(eng); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
}

func TestNetworkConnectDisconnectAndContainerSettings(t *testing.T) {
	nets := newFakeNetworks()
	cs := &netContainers{fakeContainers: newFakeContainers(), nets: nets}
	run := runningContainer()
	run.NetNSPath = "/run/berth/netns/" + run.ID
	run.Networks = map[string]*container.NetworkAttachment{
		"bridge": {Endpoint: berthnet.Endpoint{ContainerID: run.ID, Network: "bridge", NetworkID: strings.Repeat("b", 64),
			IP: netip.MustParseAddr("172.17.0.2"), Subnet: netip.MustParsePrefix("172.17.0.0/16"), Gateway: netip.MustParseAddr("172.17.0.1"),
			MAC: "02:42:ac:11:00:02", DefaultRoute: true}},
		"mynet": {Config: container.EndpointConfig{Aliases: []string{"www"}, IPv4Address: netip.MustParseAddr("172.18.0.9")},
			Endpoint: berthnet.Endpoint{ContainerID: run.ID, Network: "mynet", NetworkID: "n2", Aliases: []string{"www", run.ID[:12]},
				IP: netip.MustParseAddr("172.18.0.9"), Subnet: netip.MustParsePrefix("172.18.0.0/16"), Gateway: netip.MustParseAddr("172.18.0.1")}},
	}
	cs.add(run)
	srv, eng := newNetworkServer(t, cs)

	_, out := do(t, "GET", srv.URL+"/containers/w/json", nil)
	var ins ctypes.InspectResponse
	if err := json.Unmarshal(out, &ins); err != nil {
		t.Fatal(err)
	}
	ns := ins.NetworkSettings
	br := ns.Networks["bridge"]
	if ns.SandboxKey != run.NetNSPath || len(ns.SandboxID) != 64 || br == nil || br.IPAddress.String() != "172.17.0.2" ||
		br.IPPrefixLen != 16 || br.Gateway.String() != "172.17.0.1" || br.MacAddress.String() != "02:42:ac:11:00:02" ||
		br.NetworkID != strings.Repeat("b", 64) || len(br.EndpointID) != 64 || br.DNSNames != nil {
		t.Fatalf("inspect network settings: %s", out)
	}
	my := ns.Networks["mynet"]
	if my == nil || !slices.Equal(my.Aliases, []string{"www", run.ID[:12]}) || !slices.Equal(my.DNSNames, []string{"w", "www", run.ID[:12]}) ||
		my.IPAMConfig == nil || my.IPAMConfig.IPv4Address.String() != "172.18.0.9" {
		t.Fatalf("user network settings: %+v", my)
	}
	if ins.HostConfig.NetworkMode != "bridge" {
		t.Fatalf("network mode %q", ins.HostConfig.NetworkMode)
	}
	_, out = do(t, "GET", srv.URL+"/containers/json", nil)
	var list []ctypes.Summary
	if err := json.Unmarshal(out, &list); err != nil || len(list) != 1 || list[0].NetworkSettings == nil ||
		list[0].NetworkSettings.Networks["bridge"].IPAddress.String() != "172.17.0.2" {
		t.Fatalf("list: %s", out)
	}

	resp, out := do(t, "POST", srv.URL+"/networks/bridge/connect", body(network.ConnectRequest{Container: "w",
		EndpointConfig: &network.EndpointSettings{Aliases: []string{"x"}, IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: netip.MustParseAddr("172.17.0.7")}}}))
	if resp.StatusCode != 200 || !slices.Equal(cs.connects, []string{"cdcd bridge [x] 172.17.0.7"}) {
		t.Fatalf("connect: %d %s %v", resp.StatusCode, out, cs.connects)
	}
	if resp, out := do(t, "POST", srv.URL+"/networks/nope/connect", body(network.ConnectRequest{Container: "w"})); resp.StatusCode != 404 {
		t.Fatalf("connect to missing network: %d %s", resp.StatusCode, out)
	}
	if resp, out := do(t, "POST", srv.URL+"/networks/bridge/connect", body(network.ConnectRequest{Container: "nosuch"})); resp.StatusCode != 404 || !strings.Contains(string(out), "No such container") {
		t.Fatalf("connect a missing container: %d %s", resp.StatusCode, out)
	}
	if resp, _ := do(t, "POST", srv.URL+"/networks/"+strings.Repeat("b", 8)+"/disconnect", body(network.DisconnectRequest{Container: "w"})); resp.StatusCode != 200 {
		t.Fatalf("disconnect: %d", resp.StatusCode)
	}
	if resp, _ := do(t, "POST", srv.URL+"/networks/host/disconnect", body(network.DisconnectRequest{Container: "w"})); resp.StatusCode != 400 {
		t.Fatalf("disconnect from an unconnected network: %d", resp.StatusCode)
	}
	want := []string{"connect bridge " + run.ID, "disconnect bridge " + run.ID}
	if got := networkEvents(eng); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
}

func TestCreateCarriesEndpointsConfig(t *testing.T) {
	cs := &netContainers{fakeContainers: newFakeContainers(), nets: newFakeNetworks()}
	srv, _ := newNetworkServer(t, cs)
	req := ctypes.CreateRequest{
		Config:     &ctypes.Config{Image: "img"},
		HostConfig: &ctypes.HostConfig{NetworkMode: "mynet"},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			"mynet": {Aliases: []string{"web"}, IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: netip.MustParseAddr("172.18.0.5")}},
			"other": nil,
		}},
	}
	if resp, out := do(t, "POST", srv.URL+"/containers/create?name=c", body(req)); resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, out)
	}
	got := cs.created[0]
	if got.HostConfig.NetworkMode != "mynet" || len(got.Networks) != 2 || !slices.Equal(got.Networks["mynet"].Aliases, []string{"web"}) ||
		got.Networks["mynet"].IPv4Address.String() != "172.18.0.5" {
		t.Fatalf("create options: %+v", got)
	}
}

func TestNetworksUnavailableWithoutManager(t *testing.T) {
	for name, cs := range map[string]ContainerService{
		"plain":    newFakeContainers(),
		"nil nets": &netContainers{fakeContainers: newFakeContainers()},
	} {
		eng := New(Config{Version: "test", Containers: cs}) // no Networks
		srv := httptest.NewServer(eng)
		resp, out := do(t, "GET", srv.URL+"/networks", nil)
		if resp.StatusCode != 503 || !strings.Contains(string(out), "--bridge") {
			t.Errorf("%s: %d %s", name, resp.StatusCode, out)
		}
		srv.Close()
		eng.Close()
	}
}
