package network

import (
	"errors"
	"log/slog"
	"net/netip"
	"time"
)

// Names of the predefined networks.
const (
	DefaultNetwork = "bridge" // the default bridge network
	HostNetwork    = "host"   // share the agent's network namespace
	NoneNetwork    = "none"   // loopback only
)

// Defaults applied by Open to a zero Config field.
const (
	DefaultBridgeName = "berth0"
	DefaultSubnet     = "172.17.0.0/16"
	DefaultMTU        = 1500
	// HostGatewayName is the name under which containers reach the host
	// (Config.HostGatewayIP).
	HostGatewayName = "host.docker.internal"
)

// Sentinel errors; wrapped with the object they concern.
var (
	// ErrUnsupported reports an operation that needs Linux.
	ErrUnsupported = errors.New("network: not supported on this OS")
	// ErrNotFound reports an unknown network or endpoint.
	ErrNotFound = errors.New("network: not found")
	// ErrExists reports a network name that is already taken.
	ErrExists = errors.New("network: already exists")
	// ErrInUse reports a network that still has endpoints.
	ErrInUse = errors.New("network: has active endpoints")
	// ErrPredefined reports an attempt to create or remove bridge, host or none.
	ErrPredefined = errors.New("network: predefined network")
	// ErrExhausted reports a subnet without free addresses or address pools
	// without a free subnet.
	ErrExhausted = errors.New("network: no free address")
	// ErrInvalid reports an invalid argument (name, subnet, address).
	ErrInvalid = errors.New("network: invalid argument")
	// ErrOverlap reports a subnet that overlaps another network or route.
	ErrOverlap = errors.New("network: subnet overlaps")
	// ErrClosed reports a call on a closed Manager.
	ErrClosed = errors.New("network: manager closed")
)

// Config configures a Manager.
type Config struct {
	// Root is the directory holding the state file (created if missing).
	Root string
	// Logger receives progress and reconcile messages; nil discards them.
	Logger *slog.Logger
	// DefaultSubnet is the subnet of the "bridge" network; zero means
	// 172.17.0.0/16. It must not overlap the agent's own routes.
	DefaultSubnet netip.Prefix
	// BridgeName is the Linux bridge of the "bridge" network; "" means berth0.
	BridgeName string
	// MTU of bridges and veths; 0 means 1500.
	MTU int
	// HostGatewayIP is what host.docker.internal resolves to; zero means the
	// default bridge's gateway (the agent itself).
	HostGatewayIP netip.Addr
	// DNS lists the upstream resolvers of the embedded DNS server; nil means
	// the nameservers of ResolvConfPath (8.8.8.8 and 8.8.4.4 if it has none).
	DNS []netip.Addr
	// ResolvConfPath is the agent's resolv.conf; "" means /etc/resolv.conf.
	ResolvConfPath string
	// AddressPools are the pools user-defined subnets are taken from; nil
	// means DefaultAddressPools.
	AddressPools []AddressPool
	// DNSPort is the port of the embedded DNS server; 0 means 53.
	DNSPort int
}

// AddressPool is a range split into subnets of one size for user-defined
// networks, like dockerd's default-address-pools.
type AddressPool struct {
	Base netip.Prefix // e.g. 172.17.0.0/12
	Size int          // prefix length of each subnet, e.g. 16
}

// DefaultAddressPools are dockerd's default pools: 172.17.0.0/16 to
// 172.31.0.0/16, then 192.168.0.0/20 to 192.168.240.0/20.
var DefaultAddressPools = []AddressPool{
	{Base: netip.MustParsePrefix("172.17.0.0/16"), Size: 16},
	{Base: netip.MustParsePrefix("172.18.0.0/15"), Size: 16},
	{Base: netip.MustParsePrefix("172.20.0.0/14"), Size: 16},
	{Base: netip.MustParsePrefix("172.24.0.0/13"), Size: 16},
	{Base: netip.MustParsePrefix("192.168.0.0/16"), Size: 20},
}

// CreateOptions are the options of a user-defined network.
type CreateOptions struct {
	// Subnet is the network's subnet; zero picks the next free pool subnet.
	Subnet netip.Prefix
	// Gateway is the bridge's address; zero means the subnet's first address.
	Gateway netip.Addr
	// Internal networks get no outbound NAT and no forwarding out.
	Internal bool
	// Labels are stored and reported as given.
	Labels map[string]string
}

// Network describes a network as `docker network inspect` shows it.
type Network struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Driver   string            `json:"driver"` // "bridge", "host" or "null"
	Bridge   string            `json:"bridge,omitempty"`
	Subnet   netip.Prefix      `json:"subnet,omitzero"`
	Gateway  netip.Addr        `json:"gateway,omitzero"`
	Internal bool              `json:"internal,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Created  time.Time         `json:"created"`
	// LastIP is the address handed out last (allocation goes round-robin).
	LastIP netip.Addr `json:"lastIP,omitzero"`
	// Endpoints is filled by Inspect only.
	Endpoints []Endpoint `json:"-"`
}

// Endpoint is a container's attachment to one network.
type Endpoint struct {
	ContainerID   string       `json:"containerID"`
	ContainerName string       `json:"containerName,omitempty"`
	Network       string       `json:"network"`   // network name
	NetworkID     string       `json:"networkID"` // network ID
	Aliases       []string     `json:"aliases,omitempty"`
	NetNSPath     string       `json:"netns,omitempty"`
	IfName        string       `json:"ifName,omitempty"`     // inside the container: eth0, eth1, …
	HostIfName    string       `json:"hostIfName,omitempty"` // host side of the veth
	IP            netip.Addr   `json:"ip,omitzero"`
	Subnet        netip.Prefix `json:"subnet,omitzero"`
	Gateway       netip.Addr   `json:"gateway,omitzero"`
	MAC           string       `json:"mac,omitempty"` // 02:42:… derived from IP
	// DefaultRoute tells whether this endpoint carries the container's
	// default route (the first endpoint attached does).
	DefaultRoute bool `json:"defaultRoute,omitempty"`
}
