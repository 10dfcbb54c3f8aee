package network

import (
	"errors"
	"net/netip"
	"testing"
)

func TestAllocateExhaustsAndFrees(t *testing.T) {
	subnet := netip.MustParsePrefix("10.9.0.0/29") // .1 gateway, .2-.6 usable, .7 broadcast
	gw := firstHost(subnet)
	used := map[netip.Addr]bool{}
	var last netip.Addr
	var got []string
	for {
		a, err := allocateIP(subnet, gw, last, used)
		if errors.Is(err, ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		used[a], last = true, a
		got = append(got, a.String())
	}
	want := []string{"10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"}
	if len(got) != len(want) {
		t.Fatalf("allocated %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("allocated %v, want %v", got, want)
		}
	}
	// Free .3: it is the only free address, so it comes back even though
	// allocation is round-robin.
	delete(used, netip.MustParseAddr("10.9.0.3"))
	a, err := allocateIP(subnet, gw, last, used)
	if err != nil || a.String() != "10.9.0.3" {
		t.Fatalf("after free: %v %v", a, err)
	}
}

func TestAllocateRoundRobin(t *testing.T) {
	subnet := netip.MustParsePrefix("172.17.0.0/16")
	gw := firstHost(subnet)
	used := map[netip.Addr]bool{}
	// .2 was handed out last and freed: the next one is .3, not .2 again.
	a, err := allocateIP(subnet, gw, netip.MustParseAddr("172.17.0.2"), used)
	if err != nil || a.String() != "172.17.0.3" {
		t.Fatalf("got %v %v", a, err)
	}
	// Wraps past the broadcast address back to the start, skipping the gateway.
	a, err = allocateIP(subnet, gw, netip.MustParseAddr("172.17.255.254"), used)
	if err != nil || a.String() != "172.17.0.2" {
		t.Fatalf("wrap: got %v %v", a, err)
	}
}

func TestAllocateCustomGateway(t *testing.T) {
	subnet := netip.MustParsePrefix("10.1.2.0/30") // .1 and .2 usable
	gw := netip.MustParseAddr("10.1.2.2")
	a, err := allocateIP(subnet, gw, netip.Addr{}, nil)
	if err != nil || a.String() != "10.1.2.1" {
		t.Fatalf("got %v %v", a, err)
	}
	if _, err := allocateIP(subnet, gw, a, map[netip.Addr]bool{a: true}); !errors.Is(err, ErrExhausted) {
		t.Fatalf("want ErrExhausted, got %v", err)
	}
}

func TestCheckRequestedIP(t *testing.T) {
	subnet := netip.MustParsePrefix("10.0.0.0/24")
	gw := firstHost(subnet)
	used := map[netip.Addr]bool{netip.MustParseAddr("10.0.0.5"): true}
	for _, tc := range []struct {
		ip   string
		want error
	}{
		{"10.0.0.9", nil},
		{"10.0.1.9", ErrInvalid},
		{"10.0.0.0", ErrInvalid},
		{"10.0.0.1", ErrInvalid},
		{"10.0.0.255", ErrInvalid},
		{"10.0.0.5", ErrExists},
	} {
		err := checkRequestedIP(subnet, gw, netip.MustParseAddr(tc.ip), used)
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: got %v, want %v", tc.ip, err, tc.want)
		}
	}
}

func TestPickSubnetAvoidsOverlaps(t *testing.T) {
	used := []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/0"),      // a default route overlaps nothing
		netip.MustParsePrefix("172.17.0.0/16"),  // default bridge
		netip.MustParsePrefix("172.18.5.0/24"),  // an agent route inside 172.18/16
		netip.MustParsePrefix("172.19.0.0/16"),  // another network
		netip.MustParsePrefix("172.16.0.0/12"),  // …and then everything in 172.16/12
		netip.MustParsePrefix("192.168.0.0/20"), // first /20 of 192.168
	}
	got, err := pickSubnet(DefaultAddressPools, used[:4])
	if err != nil || got.String() != "172.20.0.0/16" {
		t.Fatalf("got %v %v, want 172.20.0.0/16", got, err)
	}
	got, err = pickSubnet(DefaultAddressPools, used)
	if err != nil || got.String() != "192.168.16.0/20" {
		t.Fatalf("got %v %v, want 192.168.16.0/20", got, err)
	}
	got, err = pickSubnet(DefaultAddressPools, nil)
	if err != nil || got.String() != "172.17.0.0/16" {
		t.Fatalf("got %v %v", got, err)
	}
	small := []AddressPool{{Base: netip.MustParsePrefix("10.0.0.0/23"), Size: 24}}
	if _, err := pickSubnet(small, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/23")}); !errors.Is(err, ErrExhausted) {
		t.Fatalf("want ErrExhausted, got %v", err)
	}
}

func TestValidSubnet(t *testing.T) {
	if p, err := validSubnet(netip.MustParsePrefix("10.5.6.7/16")); err != nil || p.String() != "10.5.0.0/16" {
		t.Fatalf("got %v %v", p, err)
	}
	for _, s := range []string{"fd00::/64", "10.0.0.0/31", "10.0.0.0/7"} {
		if _, err := validSubnet(netip.MustParsePrefix(s)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: want ErrInvalid, got %v", s, err)
		}
	}
}

func TestMACAndBroadcast(t *testing.T) {
	if got := macFromIP(netip.MustParseAddr("172.17.0.2")).String(); got != "02:42:ac:11:00:02" {
		t.Errorf("mac %s", got)
	}
	if got := broadcast(netip.MustParsePrefix("10.1.0.0/20")); got.String() != "10.1.15.255" {
		t.Errorf("broadcast %s", got)
	}
	if got := hostIfName("abc", "def"); len(got) != 15 || got[:4] != "veth" {
		t.Errorf("host if name %q", got)
	}
}
