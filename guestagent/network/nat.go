package network

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// The nftables objects berth owns in the agent's namespace.
const (
	nftTable       = "berth" // family ip
	nftPostrouting = "postrouting"
	nftForward     = "forward"
)

// natNetwork is what the rule plan needs to know of one network.
type natNetwork struct {
	Bridge   string
	Subnet   netip.Prefix
	Internal bool
}

// ruleSpec is one nftables rule as data: every set match must hold, then
// Verdict applies. The Linux side turns it into expressions.
type ruleSpec struct {
	Chain string // nftPostrouting or nftForward
	// Established matches ct state established,related.
	Established bool
	// SrcNet matches ip saddr when valid.
	SrcNet netip.Prefix
	// IIf/OIf match iifname/oifname when non-empty; the Not flags negate.
	IIf, OIf       string
	IIfNot, OIfNot bool
	// Verdict is "accept", "drop" or "masquerade".
	Verdict string
}

// String renders the rule in nft syntax, for logs and tests.
func (r ruleSpec) String() string {
	var p []string
	if r.Established {
		p = append(p, "ct state established,related")
	}
	if r.SrcNet.IsValid() {
		p = append(p, "ip saddr "+r.SrcNet.String())
	}
	neg := func(not bool) string {
		if not {
			return "!= "
		}
		return ""
	}
	if r.IIf != "" {
		p = append(p, fmt.Sprintf("iifname %s%q", neg(r.IIfNot), r.IIf))
	}
	if r.OIf != "" {
		p = append(p, fmt.Sprintf("oifname %s%q", neg(r.OIfNot), r.OIf))
	}
	p = append(p, r.Verdict)
	return r.Chain + ": " + strings.Join(p, " ")
}

// planRules computes the whole rule set of table berth:
//
//	postrouting (nat, srcnat): masquerade each non-internal subnet leaving
//	through any interface but its own bridge;
//	forward (filter, policy drop): accept replies, keep networks apart, keep
//	internal networks in, accept what comes from a bridge.
func planRules(nets []natNetwork) []ruleSpec {
	nets = append([]natNetwork(nil), nets...)
	sort.Slice(nets, func(i, j int) bool { return nets[i].Bridge < nets[j].Bridge })
	var rules []ruleSpec
	for _, n := range nets {
		if n.Internal {
			continue
		}
		rules = append(rules, ruleSpec{Chain: nftPostrouting, SrcNet: n.Subnet.Masked(), OIf: n.Bridge, OIfNot: true, Verdict: "masquerade"})
	}
	rules = append(rules, ruleSpec{Chain: nftForward, Established: true, Verdict: "accept"})
	for _, a := range nets {
		for _, b := range nets {
			if a.Bridge != b.Bridge {
				rules = append(rules, ruleSpec{Chain: nftForward, IIf: a.Bridge, OIf: b.Bridge, Verdict: "drop"})
			}
		}
	}
	for _, n := range nets {
		if n.Internal {
			rules = append(rules,
				ruleSpec{Chain: nftForward, IIf: n.Bridge, OIf: n.Bridge, OIfNot: true, Verdict: "drop"},
				ruleSpec{Chain: nftForward, OIf: n.Bridge, IIf: n.Bridge, IIfNot: true, Verdict: "drop"})
		}
	}
	for _, n := range nets {
		rules = append(rules, ruleSpec{Chain: nftForward, IIf: n.Bridge, Verdict: "accept"})
	}
	return rules
}
