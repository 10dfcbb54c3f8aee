// Package network gives berth's containers Docker-style networking inside the
// agent's own network namespace: a Linux bridge per network, one veth pair per
// container endpoint, IPv4 address management persisted across agent
// restarts, outbound NAT through an nftables table named "berth" (programmed
// over netlink, no iptables or ip binary), the per-container /etc/hosts,
// /etc/resolv.conf and /etc/hostname contents, and a small embedded DNS
// server on each network's gateway address that resolves container names and
// aliases on user-defined networks and forwards every other question to the
// agent's upstream resolvers.
//
// Networks: "bridge" (the default, bridge berth0, 172.17.0.0/16 unless
// configured), user-defined bridge networks (bridges br-<id12>, subnets picked
// from the address pools, 172.18.0.0/16 onwards, never overlapping another
// network or a route of the agent), and the pseudo-networks "host" (the
// container shares the agent's namespace; Attach does nothing) and "none"
// (loopback only).
//
// The agent is expected to run in a network namespace of its own (a VM, or
// the native driver's fresh namespace), so the bridge, the forwarding sysctl
// and the nftables rules never touch the network of the machine berth runs on.
//
// Published ports: no DNAT rules are installed. The hostagent (or, natively,
// the agent's forwarder) accepts connections on the host side and dials the
// container's IP:port from within the agent's namespace, which reaches the
// container through the bridge as locally originated traffic. PublishedPorts
// therefore needs no support in this package.
//
// Layout: the address allocator, pool selection, MAC derivation, the NAT rule
// plan, the state file, the DNS server and the file contents are portable and
// unit-tested unprivileged; netlink, nftables and namespace handling live in
// *_linux.go files, and on other systems Open, NewNetNS and DeleteNetNS
// report ErrUnsupported.
package network
