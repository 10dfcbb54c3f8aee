package network

import (
	"net/netip"
	"strings"
	"testing"
)

func TestPlanRules(t *testing.T) {
	got := planRules([]natNetwork{
		{Bridge: "br-aaa", Subnet: netip.MustParsePrefix("172.18.0.0/16")},
		{Bridge: "berth0", Subnet: netip.MustParsePrefix("172.17.0.0/16")},
		{Bridge: "br-int", Subnet: netip.MustParsePrefix("172.19.0.0/16"), Internal: true},
	})
	var lines []string
	for _, r := range got {
		lines = append(lines, r.String())
	}
	want := []string{
		`postrouting: ip saddr 172.17.0.0/16 oifname != "berth0" masquerade`,
		`postrouting: ip saddr 172.18.0.0/16 oifname != "br-aaa" masquerade`,
		`forward: ct state established,related accept`,
		`forward: iifname "berth0" oifname "br-aaa" drop`,
		`forward: iifname "berth0" oifname "br-int" drop`,
		`forward: iifname "br-aaa" oifname "berth0" drop`,
		`forward: iifname "br-aaa" oifname "br-int" drop`,
		`forward: iifname "br-int" oifname "berth0" drop`,
		`forward: iifname "br-int" oifname "br-aaa" drop`,
		`forward: iifname "br-int" oifname != "br-int" drop`,
		`forward: iifname != "br-int" oifname "br-int" drop`,
		`forward: iifname "berth0" accept`,
		`forward: iifname "br-aaa" accept`,
		`forward: iifname "br-int" accept`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if n := len(planRules(nil)); n != 1 {
		t.Fatalf("empty plan has %d rules, want only the established one", n)
	}
}
