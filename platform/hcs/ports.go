package hcs

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/guestagent/runtime/container"
)

// Network modes of a Windows container.
const (
	// NetworkNAT attaches the container to HNS's NAT network (Docker's "nat", the default on Windows).
	NetworkNAT = "nat"
	// NetworkNone gives the container no endpoint.
	NetworkNone = "none"
)

// NetworkMode maps Docker's --network to a Windows network mode: "", "default", "bridge" and "nat" mean
// NetworkNAT; "none" NetworkNone; anything else (host, container:<id>, user networks) is not supported.
func NetworkMode(mode string) (string, error) {
	switch mode {
	case "", "default", "bridge", NetworkNAT:
		return NetworkNAT, nil
	case NetworkNone:
		return NetworkNone, nil
	}
	return "", fmt.Errorf("%w: network mode %q is not supported for Windows containers (use nat or none)", ErrInvalidConfig, mode)
}

// PortAllocator picks a free host port for proto ("tcp" or "udp") when a binding leaves it to the engine.
type PortAllocator func(proto string) (uint16, error)

// NatPolicies translates Docker's port bindings ("80/tcp" → [{HostIP, HostPort}]) into HNS NAT policies,
// sorted by protocol and ports. HNS's NAT publishes on every host address: a binding may name no host
// address, 0.0.0.0 or ::, nothing else. A host port of "" or "0" is taken from alloc; host port ranges
// are not supported. Two bindings of one host port and protocol conflict.
func NatPolicies(bindings map[string][]container.PortBinding, alloc PortAllocator) ([]NatPolicy, error) {
	var out []NatPolicy
	used := map[string]bool{}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range bindings {
			if !yield(k) {
				return
			}
		}
	})
	for _, key := range keys {
		port, proto, err := parsePortKey(key)
		if err != nil {
			return nil, err
		}
		for _, b := range bindings[key] {
			if b.HostIP != "" {
				a, err := netip.ParseAddr(b.HostIP)
				if err != nil || !a.IsUnspecified() {
					return nil, fmt.Errorf("%w: port %s: host address %q: HNS NAT publishes on all host addresses only", ErrInvalidPort, key, b.HostIP)
				}
			}
			var ext uint16
			switch b.HostPort {
			case "", "0":
				if alloc == nil {
					return nil, fmt.Errorf("%w: port %s: no host port and no allocator", ErrInvalidPort, key)
				}
				if ext, err = alloc(proto); err != nil {
					return nil, fmt.Errorf("%w: port %s: allocate a host port: %w", ErrInvalidPort, key, err)
				}
			default:
				if strings.Contains(b.HostPort, "-") {
					return nil, fmt.Errorf("%w: port %s: host port ranges (%s) are not supported", ErrInvalidPort, key, b.HostPort)
				}
				n, err := strconv.ParseUint(b.HostPort, 10, 16)
				if err != nil || n == 0 {
					return nil, fmt.Errorf("%w: port %s: host port %q", ErrInvalidPort, key, b.HostPort)
				}
				ext = uint16(n)
			}
			id := proto + "/" + strconv.Itoa(int(ext))
			if used[id] {
				return nil, fmt.Errorf("%w: host port %s is bound twice", ErrInvalidPort, id)
			}
			used[id] = true
			out = append(out, NatPolicy{Type: "NAT", Protocol: strings.ToUpper(proto), InternalPort: port, ExternalPort: ext})
		}
	}
	slices.SortStableFunc(out, func(a, b NatPolicy) int {
		if c := strings.Compare(a.Protocol, b.Protocol); c != 0 {
			return c
		}
		if a.InternalPort != b.InternalPort {
			return int(a.InternalPort) - int(b.InternalPort)
		}
		return int(a.ExternalPort) - int(b.ExternalPort)
	})
	return out, nil
}

// parsePortKey parses "80", "80/tcp" or "53/udp".
func parsePortKey(key string) (uint16, string, error) {
	p, proto, _ := strings.Cut(key, "/")
	if proto == "" {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" {
		return 0, "", fmt.Errorf("%w: port %q: protocol %q (HNS NAT supports tcp and udp)", ErrInvalidPort, key, proto)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return 0, "", fmt.Errorf("%w: port %q", ErrInvalidPort, key)
	}
	return uint16(n), proto, nil
}
