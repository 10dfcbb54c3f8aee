package network

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// startTestDNS serves s on 127.0.0.1, UDP and TCP on one port.
func startTestDNS(t *testing.T, s *dnsServer) netip.AddrPort {
	t.Helper()
	s.log = slog.New(slog.DiscardHandler)
	for range 20 {
		udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ap := udp.LocalAddr().(*net.UDPAddr).AddrPort()
		tcp, err := net.Listen("tcp4", ap.String())
		if err != nil {
			_ = udp.Close()
			continue
		}
		s.serve(udp, tcp)
		t.Cleanup(s.close)
		return ap
	}
	t.Fatal("no port free for both UDP and TCP")
	return netip.AddrPort{}
}

func buildQuery(t *testing.T, id uint16, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	_ = b.StartQuestions()
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	m, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// query asks server and returns the rcode and the A records of the answer.
func query(t *testing.T, server netip.AddrPort, tcp bool, name string, typ dnsmessage.Type) (dnsmessage.RCode, []netip.Addr) {
	t.Helper()
	q := buildQuery(t, 0x4242, name, typ)
	resp, err := exchange(server, q, tcp, 5*time.Second)
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	return parseAnswer(t, resp, 0x4242)
}

func parseAnswer(t *testing.T, resp []byte, id uint16) (dnsmessage.RCode, []netip.Addr) {
	t.Helper()
	var msg dnsmessage.Message
	if err := msg.Unpack(resp); err != nil {
		t.Fatalf("unpack: %v", err)
	}
	if msg.ID != id || !msg.Response {
		t.Fatalf("bad reply header %+v", msg.Header)
	}
	var addrs []netip.Addr
	for _, a := range msg.Answers {
		if r, ok := a.Body.(*dnsmessage.AResource); ok {
			addrs = append(addrs, netip.AddrFrom4(r.A))
		}
	}
	return msg.RCode, addrs
}

func TestDNSServer(t *testing.T) {
	upstream := &dnsServer{
		resolve: func(name string) []netip.Addr {
			if name == "up.example" {
				return []netip.Addr{netip.MustParseAddr("9.9.9.9")}
			}
			return nil
		},
		upstreams: func() []netip.AddrPort { return nil },
	}
	upAddr := startTestDNS(t, upstream)
	// A dead upstream first: the server must go on to the next one.
	dead, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.LocalAddr().(*net.UDPAddr).AddrPort()
	defer dead.Close()
	s := &dnsServer{
		resolve: func(name string) []netip.Addr {
			switch name {
			case "web":
				return []netip.Addr{netip.MustParseAddr("172.18.0.2")}
			case "pool":
				return []netip.Addr{netip.MustParseAddr("172.18.0.2"), netip.MustParseAddr("172.18.0.3")}
			}
			return nil
		},
		upstreams: func() []netip.AddrPort { return []netip.AddrPort{deadAddr, upAddr} },
		timeout:   300 * time.Millisecond,
	}
	srv := startTestDNS(t, s)
	for _, tcp := range []bool{false, true} {
		rc, addrs := query(t, srv, tcp, "WEB.", dnsmessage.TypeA)
		if rc != dnsmessage.RCodeSuccess || len(addrs) != 1 || addrs[0].String() != "172.18.0.2" {
			t.Errorf("tcp=%v web: %v %v", tcp, rc, addrs)
		}
		rc, addrs = query(t, srv, tcp, "pool.", dnsmessage.TypeA)
		if rc != dnsmessage.RCodeSuccess || len(addrs) != 2 {
			t.Errorf("tcp=%v shared alias: %v %v", tcp, rc, addrs)
		}
		rc, addrs = query(t, srv, tcp, "web.", dnsmessage.TypeAAAA)
		if rc != dnsmessage.RCodeSuccess || len(addrs) != 0 {
			t.Errorf("tcp=%v web AAAA: %v %v", tcp, rc, addrs)
		}
		rc, addrs = query(t, srv, tcp, "up.example.", dnsmessage.TypeA)
		if rc != dnsmessage.RCodeSuccess || len(addrs) != 1 || addrs[0].String() != "9.9.9.9" {
			t.Errorf("tcp=%v forwarded: %v %v", tcp, rc, addrs)
		}
		rc, _ = query(t, srv, tcp, "nowhere.example.", dnsmessage.TypeA)
		if rc != dnsmessage.RCodeServerFailure {
			t.Errorf("tcp=%v unknown everywhere: rcode %v, want SERVFAIL", tcp, rc)
		}
	}
	// Garbage gets no answer; a response message is not answered either.
	if s.handle([]byte{1, 2, 3}, false) != nil {
		t.Error("answered garbage")
	}
	resp := s.handle(buildQuery(t, 7, "web.", dnsmessage.TypeA), false)
	if s.handle(resp, false) != nil {
		t.Error("answered a response")
	}
}
