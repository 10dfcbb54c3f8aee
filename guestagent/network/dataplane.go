package network

import (
	"net"
	"net/netip"
)

// dataplane is the kernel side of a Manager: netlink links and addresses,
// nftables, sysctls and sockets in the agent's namespace. The Manager keeps
// all bookkeeping and calls it with fully planned values; unit tests use a
// fake.
type dataplane interface {
	// ensureBridge creates the bridge if missing and makes sure it has addr
	// (gateway/prefix), the MTU and is up.
	ensureBridge(name string, addr netip.Prefix, mtu int) error
	// deleteBridge removes the bridge; a missing one is not an error.
	deleteBridge(name string) error
	// applyRules replaces table berth with exactly rules, atomically.
	applyRules(rules []ruleSpec) error
	// enableForwarding turns on IPv4 forwarding in the agent's namespace.
	enableForwarding() error
	// routes lists the destinations of the agent's IPv4 routes.
	routes() ([]netip.Prefix, error)
	// attach creates a veth pair for p and configures both ends.
	attach(p attachPlan) error
	// attachNone brings up loopback in a namespace (--network none).
	attachNone(netnsPath string) error
	// detach removes the host side of a veth (and so its peer); a missing
	// link is not an error.
	detach(hostIf string) error
	// repairPort reports whether the host side of a veth exists and, if it
	// does, makes sure it is a port of bridge and up.
	repairPort(hostIf, bridge string) (bool, error)
	// netnsAlive reports whether path is a usable network namespace.
	netnsAlive(path string) bool
	// listen opens the UDP and TCP sockets of a DNS server.
	listen(ap netip.AddrPort) (net.PacketConn, net.Listener, error)
	// sweepPorts deletes the links enslaved to one of bridges that are not
	// in keep: veths of endpoints the state no longer knows.
	sweepPorts(bridges []string, keep map[string]bool) error
	// close releases the dataplane's own resources (netlink sockets); the
	// kernel objects stay.
	close()
}

// attachPlan holds every value of one veth attachment.
type attachPlan struct {
	HostIf       string           // host side name, on the bridge
	Bridge       string           // bridge to enslave HostIf to
	NetNSPath    string           // the container's network namespace
	IfName       string           // container side name (eth0, …)
	MAC          net.HardwareAddr // container side MAC
	Addr         netip.Prefix     // container address with the subnet's length
	Gateway      netip.Addr       // default gateway when DefaultRoute
	DefaultRoute bool
	MTU          int
}
