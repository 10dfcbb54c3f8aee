package network

import (
	"fmt"
	"net"
	"net/netip"
)

// validSubnet checks that p is an IPv4 subnet with room for a gateway and at
// least one container (prefix length 8…30) and returns it masked.
func validSubnet(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("subnet %s: only IPv4 subnets are supported: %w", p, ErrInvalid)
	}
	if p.Bits() < 8 || p.Bits() > 30 {
		return netip.Prefix{}, fmt.Errorf("subnet %s: prefix length must be 8..30: %w", p, ErrInvalid)
	}
	return p.Masked(), nil
}

// firstHost is the first usable address of an IPv4 subnet: the default gateway.
func firstHost(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// broadcast is the last address of an IPv4 subnet.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// reserved reports whether addr can never be handed to a container: the
// network and broadcast addresses and the gateway.
func reserved(subnet netip.Prefix, gw, addr netip.Addr) bool {
	return addr == subnet.Masked().Addr() || addr == broadcast(subnet) || addr == gw
}

// allocateIP picks a free address of subnet, round-robin after last (zero:
// from the start) so that a just-freed address is not reused at once. used
// holds the addresses in use.
func allocateIP(subnet netip.Prefix, gw, last netip.Addr, used map[netip.Addr]bool) (netip.Addr, error) {
	subnet = subnet.Masked()
	start := last
	if !start.IsValid() || !subnet.Contains(start) {
		start = subnet.Addr()
	}
	a := start
	for {
		a = a.Next()
		if !subnet.Contains(a) {
			a = subnet.Addr()
		}
		if !reserved(subnet, gw, a) && !used[a] {
			return a, nil
		}
		if a == start {
			return netip.Addr{}, fmt.Errorf("subnet %s: %w", subnet, ErrExhausted)
		}
	}
}

// checkRequestedIP validates a caller-chosen address.
func checkRequestedIP(subnet netip.Prefix, gw, addr netip.Addr, used map[netip.Addr]bool) error {
	switch {
	case !subnet.Contains(addr):
		return fmt.Errorf("address %s: not in subnet %s: %w", addr, subnet, ErrInvalid)
	case reserved(subnet, gw, addr):
		return fmt.Errorf("address %s: reserved in subnet %s: %w", addr, subnet, ErrInvalid)
	case used[addr]:
		return fmt.Errorf("address %s: already in use: %w", addr, ErrExists)
	}
	return nil
}

// pickSubnet returns the first subnet of the pools that overlaps none of
// used (other networks' subnets and the agent's routes).
func pickSubnet(pools []AddressPool, used []netip.Prefix) (netip.Prefix, error) {
	for _, pool := range pools {
		base := pool.Base.Masked()
		if !base.Addr().Is4() || pool.Size < base.Bits() || pool.Size > 30 {
			continue
		}
		step := uint64(1) << (32 - pool.Size)
		count := uint64(1) << (pool.Size - base.Bits())
		b := base.Addr().As4()
		v := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
		for i := uint64(0); i < count; i++ {
			x := v + i*step
			cand := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)}), pool.Size)
			if !overlapsAny(cand, used) {
				return cand, nil
			}
		}
	}
	return netip.Prefix{}, fmt.Errorf("address pools: %w", ErrExhausted)
}

// overlapsAny reports whether p overlaps one of list. A default route
// (0.0.0.0/0) is ignored: it overlaps everything.
func overlapsAny(p netip.Prefix, list []netip.Prefix) bool {
	for _, q := range list {
		if q.Bits() == 0 {
			continue
		}
		if p.Overlaps(q) {
			return true
		}
	}
	return false
}

// macFromIP derives a MAC address from an IPv4 address as dockerd does:
// 02:42 followed by the four address bytes.
func macFromIP(ip netip.Addr) net.HardwareAddr {
	a := ip.As4()
	return net.HardwareAddr{0x02, 0x42, a[0], a[1], a[2], a[3]}
}
