package sshwire

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestHandoffRoundTrip(t *testing.T) {
	tok := bytes.Repeat([]byte{7}, HandoffTokenLen)
	h := Handoff{Token: tok, Network: "tcp", Addr: "172.17.0.2:80"}
	b, err := MarshalHandoff(h)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxHandoffMessage {
		t.Fatalf("message of %d bytes exceeds MaxHandoffMessage %d", len(b), MaxHandoffMessage)
	}
	got, err := ParseHandoff(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Token, tok) || got.Network != "tcp" || got.Addr != h.Addr {
		t.Fatalf("round trip: got %+v, want %+v", got, h)
	}
	// The longest message fits the bound.
	long := Handoff{Token: tok, Network: strings.Repeat("n", 255), Addr: strings.Repeat("a", 1024)}
	if b, err := MarshalHandoff(long); err != nil || len(b) != MaxHandoffMessage {
		t.Fatalf("longest message: %d bytes, %v; want %d", len(b), err, MaxHandoffMessage)
	}
}

func TestHandoffMarshalRejects(t *testing.T) {
	tok := make([]byte, HandoffTokenLen)
	for name, h := range map[string]Handoff{
		"short token":  {Token: tok[:5], Network: "tcp", Addr: "a:1"},
		"no network":   {Token: tok, Addr: "a:1"},
		"no address":   {Token: tok, Network: "tcp"},
		"long address": {Token: tok, Network: "tcp", Addr: strings.Repeat("a", 1025)},
	} {
		if _, err := MarshalHandoff(h); !errors.Is(err, ErrHandoffMalformed) {
			t.Errorf("%s: err = %v, want ErrHandoffMalformed", name, err)
		}
	}
}

func TestParseHandoffRejects(t *testing.T) {
	good, err := MarshalHandoff(Handoff{Token: make([]byte, HandoffTokenLen), Network: "tcp", Addr: "10.0.0.1:80"})
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string][]byte{
		"empty":          nil,
		"wrong magic":    append([]byte("XXXX"), good[4:]...),
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(append([]byte{}, good...), 'x'),
		"header only":    good[:len(handoffMagic)+HandoffTokenLen],
	}
	// Every prefix of a good message is malformed too.
	for i := range len(good) {
		bad[fmt.Sprintf("prefix of %d bytes", i)] = good[:i]
	}
	for name, b := range bad {
		if _, err := ParseHandoff(b); !errors.Is(err, ErrHandoffMalformed) {
			t.Errorf("%s: err = %v, want ErrHandoffMalformed", name, err)
		}
	}
}

func TestHandoffReply(t *testing.T) {
	if err := ParseHandoffReply(AppendHandoffReply(nil, HandoffOK, "ignored")); err != nil {
		t.Fatalf("OK reply: %v", err)
	}
	err := ParseHandoffReply(AppendHandoffReply(nil, HandoffDialError, "connection refused"))
	if !errors.Is(err, ErrHandoffDial) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("dial error reply: %v", err)
	}
	if err := ParseHandoffReply(AppendHandoffReply(nil, HandoffRefused, "bad token")); !errors.Is(err, ErrHandoffRefused) {
		t.Fatalf("refused reply: %v", err)
	}
	if b := AppendHandoffReply(nil, HandoffRefused, strings.Repeat("x", 5000)); len(b) != 1025 {
		t.Fatalf("long message not cut: %d bytes", len(b))
	}
	for _, b := range [][]byte{nil, {9}, {HandoffOK, 'x'}} {
		if err := ParseHandoffReply(b); !errors.Is(err, ErrHandoffMalformed) {
			t.Errorf("reply %q: err = %v, want ErrHandoffMalformed", b, err)
		}
	}
}
