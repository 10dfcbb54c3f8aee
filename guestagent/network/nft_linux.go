package network

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// nftObjects returns berth's table and its two base chains.
func nftObjects() (*nftables.Table, *nftables.Chain, *nftables.Chain) {
	t := &nftables.Table{Name: nftTable, Family: nftables.TableFamilyIPv4}
	post := &nftables.Chain{
		Name: nftPostrouting, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	}
	drop := nftables.ChainPolicyDrop
	fwd := &nftables.Chain{
		Name: nftForward, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &drop,
	}
	return t, post, fwd
}

// ruleExprs translates one planned rule into nftables expressions.
func ruleExprs(r ruleSpec) ([]expr.Any, error) {
	var ex []expr.Any
	if r.Established {
		ex = append(ex,
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
				Xor:  binaryutil.NativeEndian.PutUint32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)})
	}
	if r.SrcNet.IsValid() {
		p := r.SrcNet.Masked()
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("rule %s: not IPv4: %w", r, ErrInvalid)
		}
		ex = append(ex, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4})
		if p.Bits() < 32 {
			ex = append(ex, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: prefixMask(p), Xor: []byte{0, 0, 0, 0}})
		}
		ex = append(ex, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Addr().AsSlice()})
	}
	ifMatch := func(key expr.MetaKey, name string, not bool) {
		op := expr.CmpOpEq
		if not {
			op = expr.CmpOpNeq
		}
		ex = append(ex, &expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: op, Register: 1, Data: ifname(name)})
	}
	if r.IIf != "" {
		ifMatch(expr.MetaKeyIIFNAME, r.IIf, r.IIfNot)
	}
	if r.OIf != "" {
		ifMatch(expr.MetaKeyOIFNAME, r.OIf, r.OIfNot)
	}
	switch r.Verdict {
	case "accept":
		ex = append(ex, &expr.Verdict{Kind: expr.VerdictAccept})
	case "drop":
		ex = append(ex, &expr.Verdict{Kind: expr.VerdictDrop})
	case "masquerade":
		ex = append(ex, &expr.Masq{})
	default:
		return nil, fmt.Errorf("rule %s: unknown verdict: %w", r, ErrInvalid)
	}
	return ex, nil
}

// prefixMask is the 4-byte netmask of an IPv4 prefix.
func prefixMask(p netip.Prefix) []byte {
	m := uint32(0xffffffff) << (32 - p.Bits())
	return []byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}
}

// ifname pads an interface name to IFNAMSIZ as the kernel compares it.
func ifname(n string) []byte {
	b := make([]byte, 16)
	copy(b, n)
	return b
}

// applyNFT replaces table berth with the planned rules in one transaction:
// add (so that the delete cannot fail), delete, recreate.
func applyNFT(conn *nftables.Conn, rules []ruleSpec) error {
	t, post, fwd := nftObjects()
	chains := map[string]*nftables.Chain{nftPostrouting: post, nftForward: fwd}
	var built []*nftables.Rule
	for _, r := range rules {
		ex, err := ruleExprs(r)
		if err != nil {
			return err
		}
		c := chains[r.Chain]
		if c == nil {
			return fmt.Errorf("rule %s: unknown chain: %w", r, ErrInvalid)
		}
		built = append(built, &nftables.Rule{Table: t, Chain: c, Exprs: ex})
	}
	conn.AddTable(t)
	conn.DelTable(t)
	conn.AddTable(t)
	conn.AddChain(post)
	conn.AddChain(fwd)
	for _, r := range built {
		conn.AddRule(r)
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("nftables table %s: %w", nftTable, err)
	}
	return nil
}
