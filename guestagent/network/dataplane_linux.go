package network

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ipForwardPath is the IPv4 forwarding switch of the calling process's
// network namespace.
const ipForwardPath = "/proc/sys/net/ipv4/ip_forward"

// linuxDataplane programs the namespace the agent runs in through netlink.
type linuxDataplane struct {
	h *netlink.Handle
}

func newDataplane() (dataplane, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return &linuxDataplane{h: h}, nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

func (d *linuxDataplane) ensureBridge(name string, addr netip.Prefix, mtu int) error {
	link, err := d.h.LinkByName(name)
	if isNotFound(err) {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu}}
		if err := d.h.LinkAdd(br); err != nil {
			return fmt.Errorf("bridge %s: add: %w", name, err)
		}
		link, err = d.h.LinkByName(name)
	}
	if err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	if link.Type() != "bridge" {
		return fmt.Errorf("bridge %s: link exists with type %s: %w", name, link.Type(), ErrExists)
	}
	if link.Attrs().MTU != mtu {
		if err := d.h.LinkSetMTU(link, mtu); err != nil {
			return fmt.Errorf("bridge %s: mtu %d: %w", name, mtu, err)
		}
	}
	addrs, err := d.h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("bridge %s: addresses: %w", name, err)
	}
	want := ipNet(addr)
	has := false
	for _, a := range addrs {
		if a.IPNet.IP.Equal(want.IP) && bytes.Equal(a.IPNet.Mask, want.Mask) {
			has = true
		}
	}
	if !has {
		if err := d.h.AddrAdd(link, &netlink.Addr{IPNet: want}); err != nil {
			return fmt.Errorf("bridge %s: address %s: %w", name, addr, err)
		}
	}
	if err := d.h.LinkSetUp(link); err != nil {
		return fmt.Errorf("bridge %s: up: %w", name, err)
	}
	return nil
}

func (d *linuxDataplane) close() { d.h.Close() }

func (d *linuxDataplane) deleteBridge(name string) error { return d.delLink(name) }

func (d *linuxDataplane) detach(hostIf string) error { return d.delLink(hostIf) }

func (d *linuxDataplane) delLink(name string) error {
	if name == "" {
		return nil
	}
	link, err := d.h.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err == nil {
		err = d.h.LinkDel(link)
	}
	if err != nil {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

func (d *linuxDataplane) repairPort(hostIf, bridge string) (bool, error) {
	link, err := d.h.LinkByName(hostIf)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("link %s: %w", hostIf, err)
	}
	br, err := d.h.LinkByName(bridge)
	if err != nil {
		return true, fmt.Errorf("bridge %s: %w", bridge, err)
	}
	if link.Attrs().MasterIndex != br.Attrs().Index {
		if err := d.h.LinkSetMaster(link, br); err != nil {
			return true, fmt.Errorf("veth %s: master %s: %w", hostIf, bridge, err)
		}
	}
	if err := d.h.LinkSetUp(link); err != nil {
		return true, fmt.Errorf("veth %s: up: %w", hostIf, err)
	}
	return true, nil
}

func (d *linuxDataplane) applyRules(rules []ruleSpec) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return applyNFT(conn, rules)
}

func (d *linuxDataplane) enableForwarding() error {
	cur, err := os.ReadFile(ipForwardPath)
	if err == nil && bytes.Equal(bytes.TrimSpace(cur), []byte("1")) {
		return nil
	}
	if err := os.WriteFile(ipForwardPath, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable ip forwarding: %w", err)
	}
	return nil
}

func (d *linuxDataplane) routes() ([]netip.Prefix, error) {
	rs, err := d.h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var out []netip.Prefix
	for _, r := range rs {
		if r.Dst == nil {
			continue
		}
		a, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			continue
		}
		bits, _ := r.Dst.Mask.Size()
		out = append(out, netip.PrefixFrom(a.Unmap(), bits).Masked())
	}
	return out, nil
}

func (d *linuxDataplane) attach(p attachPlan) (err error) {
	ns, err := netns.GetFromPath(p.NetNSPath)
	if err != nil {
		return fmt.Errorf("netns %s: %w", p.NetNSPath, err)
	}
	defer ns.Close()
	if err := d.delLink(p.HostIf); err != nil {
		return err
	}
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: p.HostIf, MTU: p.MTU},
		PeerName:         p.IfName,
		PeerHardwareAddr: p.MAC,
		PeerNamespace:    netlink.NsFd(int(ns)),
	}
	if err := d.h.LinkAdd(veth); err != nil {
		return fmt.Errorf("veth %s/%s: add: %w", p.HostIf, p.IfName, err)
	}
	defer func() {
		if err != nil {
			_ = d.delLink(p.HostIf)
		}
	}()
	host, err := d.h.LinkByName(p.HostIf)
	if err != nil {
		return fmt.Errorf("veth %s: %w", p.HostIf, err)
	}
	br, err := d.h.LinkByName(p.Bridge)
	if err != nil {
		return fmt.Errorf("bridge %s: %w", p.Bridge, err)
	}
	if err := d.h.LinkSetMaster(host, br); err != nil {
		return fmt.Errorf("veth %s: master %s: %w", p.HostIf, p.Bridge, err)
	}
	if err := d.h.LinkSetUp(host); err != nil {
		return fmt.Errorf("veth %s: up: %w", p.HostIf, err)
	}
	ch, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", p.NetNSPath, err)
	}
	defer ch.Close()
	if err := loUp(ch); err != nil {
		return fmt.Errorf("netns %s: %w", p.NetNSPath, err)
	}
	peer, err := ch.LinkByName(p.IfName)
	if err != nil {
		return fmt.Errorf("netns %s: %s: %w", p.NetNSPath, p.IfName, err)
	}
	if err := ch.AddrReplace(peer, &netlink.Addr{IPNet: ipNet(p.Addr)}); err != nil {
		return fmt.Errorf("netns %s: %s: address %s: %w", p.NetNSPath, p.IfName, p.Addr, err)
	}
	if err := ch.LinkSetUp(peer); err != nil {
		return fmt.Errorf("netns %s: %s: up: %w", p.NetNSPath, p.IfName, err)
	}
	if p.DefaultRoute {
		r := &netlink.Route{LinkIndex: peer.Attrs().Index, Gw: net.IP(p.Gateway.AsSlice())}
		if err := ch.RouteReplace(r); err != nil {
			return fmt.Errorf("netns %s: default route via %s: %w", p.NetNSPath, p.Gateway, err)
		}
	}
	return nil
}

func (d *linuxDataplane) sweepPorts(bridges []string, keep map[string]bool) error {
	idx := map[int]bool{}
	for _, b := range bridges {
		if l, err := d.h.LinkByName(b); err == nil {
			idx[l.Attrs().Index] = true
		}
	}
	links, err := d.h.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("list links: %w", err)
	}
	var errs []error
	for _, l := range links {
		a := l.Attrs()
		if idx[a.MasterIndex] && !keep[a.Name] {
			if err := d.h.LinkDel(l); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("delete stale port %s: %w", a.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (d *linuxDataplane) attachNone(netnsPath string) error {
	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return fmt.Errorf("netns %s: %w", netnsPath, err)
	}
	defer ns.Close()
	ch, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", netnsPath, err)
	}
	defer ch.Close()
	if err := loUp(ch); err != nil {
		return fmt.Errorf("netns %s: %w", netnsPath, err)
	}
	return nil
}

func loUp(h *netlink.Handle) error {
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	return nil
}

func (d *linuxDataplane) netnsAlive(path string) bool { return isNetNS(path) }

func (d *linuxDataplane) listen(ap netip.AddrPort) (net.PacketConn, net.Listener, error) {
	udp, err := net.ListenPacket("udp4", ap.String())
	if err != nil {
		return nil, nil, err
	}
	tcp, err := net.Listen("tcp4", ap.String())
	if err != nil {
		_ = udp.Close()
		return nil, nil, err
	}
	return udp, tcp, nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), 32)}
}
