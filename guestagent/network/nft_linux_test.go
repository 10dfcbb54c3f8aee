package network

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/nftables/expr"
)

func TestRuleExprsMasquerade(t *testing.T) {
	ex, err := ruleExprs(ruleSpec{Chain: nftPostrouting, SrcNet: netip.MustParsePrefix("172.18.0.0/16"), OIf: "br-x", OIfNot: true, Verdict: "masquerade"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ex) != 6 {
		t.Fatalf("%d expressions: %#v", len(ex), ex)
	}
	p, ok := ex[0].(*expr.Payload)
	if !ok || p.Offset != 12 || p.Len != 4 || p.Base != expr.PayloadBaseNetworkHeader {
		t.Fatalf("payload %#v", ex[0])
	}
	if bw, ok := ex[1].(*expr.Bitwise); !ok || !bytes.Equal(bw.Mask, []byte{255, 255, 0, 0}) {
		t.Fatalf("mask %#v", ex[1])
	}
	if c, ok := ex[2].(*expr.Cmp); !ok || c.Op != expr.CmpOpEq || !bytes.Equal(c.Data, []byte{172, 18, 0, 0}) {
		t.Fatalf("cmp %#v", ex[2])
	}
	if m, ok := ex[3].(*expr.Meta); !ok || m.Key != expr.MetaKeyOIFNAME {
		t.Fatalf("meta %#v", ex[3])
	}
	if c, ok := ex[4].(*expr.Cmp); !ok || c.Op != expr.CmpOpNeq || len(c.Data) != 16 || string(c.Data[:4]) != "br-x" || c.Data[4] != 0 {
		t.Fatalf("oifname %#v", ex[4])
	}
	if _, ok := ex[5].(*expr.Masq); !ok {
		t.Fatalf("verdict %#v", ex[5])
	}
}

func TestRuleExprsForward(t *testing.T) {
	ex, err := ruleExprs(ruleSpec{Chain: nftForward, Established: true, Verdict: "accept"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ex[0].(*expr.Ct); !ok || len(ex) != 4 {
		t.Fatalf("%#v", ex)
	}
	if v, ok := ex[3].(*expr.Verdict); !ok || v.Kind != expr.VerdictAccept {
		t.Fatalf("%#v", ex[3])
	}
	ex, err = ruleExprs(ruleSpec{Chain: nftForward, SrcNet: netip.MustParsePrefix("10.0.0.1/32"), Verdict: "drop"})
	if err != nil || len(ex) != 3 {
		t.Fatalf("/32 needs no mask: %#v %v", ex, err)
	}
	if _, err := ruleExprs(ruleSpec{Verdict: "reject"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown verdict: %v", err)
	}
}
