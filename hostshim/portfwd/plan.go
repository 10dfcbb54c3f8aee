package portfwd

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
)

// DefaultHostIP is the host address of a published port whose -p names none: loopback only, unlike
// Docker's 0.0.0.0 (a developer's machine should not expose containers to the network by default).
const DefaultHostIP = "127.0.0.1"

// Container is what the forwarder needs to know about a container (from inspect).
type Container struct {
	// ID is the full container id.
	ID string
	// Running tells whether the container runs.
	Running bool
	// NetworkMode is the container's network mode ("bridge", "host", "none", a network name).
	NetworkMode string
	// IPs are the container's addresses inside the guest, first preferred.
	IPs []netip.Addr
	// Bindings are its published ports.
	Bindings []Binding
}

// Binding is one published port: -p [HostIP:]HostPort:ContainerPort[/Proto].
type Binding struct {
	// Proto is "tcp" or "udp".
	Proto string
	// ContainerPort is the port inside the container.
	ContainerPort uint16
	// HostIP is the host address to listen on; empty means DefaultHostIP.
	HostIP string
	// HostPort is the host port; 0 (an ephemeral port) is not supported yet.
	HostPort uint16
}

// Forward is one planned host listener.
type Forward struct {
	// ContainerID owns it.
	ContainerID string
	// Proto is "tcp" or "udp".
	Proto string
	// Listen is the host address (ip:port).
	Listen string
	// Target is the address dialled inside the guest (ip:port).
	Target string
}

// Key identifies a forward on the host.
func (f Forward) Key() string { return f.Proto + "/" + f.Listen }

// ErrNoTarget: the container has no address the guest can reach yet.
var ErrNoTarget = errors.New("portfwd: container has no reachable address")

// TargetFunc chooses the guest address of a binding's traffic.
type TargetFunc func(c Container, b Binding) (string, error)

// DefaultTarget sends traffic to the container's first IP; a container on the host network (the guest's)
// is reached on the guest's loopback.
func DefaultTarget(c Container, b Binding) (string, error) {
	port := strconv.Itoa(int(b.ContainerPort))
	if len(c.IPs) > 0 && c.IPs[0].IsValid() {
		return net.JoinHostPort(c.IPs[0].String(), port), nil
	}
	if c.NetworkMode == "host" {
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	return "", fmt.Errorf("container %.12s port %d/%s: %w", c.ID, b.ContainerPort, b.Proto, ErrNoTarget)
}

// Plan turns a running container's bindings into forwards, sorted by key. Bindings it cannot serve are
// returned as errors alongside (one bad binding never hides the others).
func Plan(c Container, target TargetFunc) ([]Forward, []error) {
	if !c.Running {
		return nil, nil
	}
	if target == nil {
		target = DefaultTarget
	}
	var out []Forward
	var errs []error
	seen := map[string]bool{}
	for _, b := range c.Bindings {
		if b.Proto != "tcp" && b.Proto != "udp" {
			errs = append(errs, fmt.Errorf("container %.12s port %d/%s: unsupported protocol", c.ID, b.ContainerPort, b.Proto))
			continue
		}
		if b.HostPort == 0 {
			errs = append(errs, fmt.Errorf("container %.12s port %d/%s: ephemeral host ports are not supported yet", c.ID, b.ContainerPort, b.Proto))
			continue
		}
		ip := b.HostIP
		if ip == "" {
			ip = DefaultHostIP
		}
		if _, err := netip.ParseAddr(ip); err != nil {
			errs = append(errs, fmt.Errorf("container %.12s port %d/%s: host ip %q: %w", c.ID, b.ContainerPort, b.Proto, ip, err))
			continue
		}
		t, err := target(c, b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f := Forward{ContainerID: c.ID, Proto: b.Proto, Listen: net.JoinHostPort(ip, strconv.Itoa(int(b.HostPort))), Target: t}
		if seen[f.Key()] {
			continue
		}
		seen[f.Key()] = true
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out, errs
}
