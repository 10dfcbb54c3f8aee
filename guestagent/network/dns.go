package network

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsTTL is the TTL of answers about containers: short, they come and go.
const dnsTTL = 60

// dnsServer answers A questions about names it knows (containers on one
// network, host.docker.internal) and forwards every other message unchanged
// to the upstream resolvers, over the transport it came in on.
type dnsServer struct {
	log *slog.Logger
	// resolve returns the addresses of a lower-case name without the
	// trailing dot; none means the name is not known here.
	resolve func(name string) []netip.Addr
	// upstreams returns the resolvers to forward to, in order.
	upstreams func() []netip.AddrPort
	// timeout bounds one exchange with one upstream.
	timeout time.Duration

	udp net.PacketConn
	tcp net.Listener

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// serve starts answering on udp and tcp (either may be nil).
func (s *dnsServer) serve(udp net.PacketConn, tcp net.Listener) {
	s.udp, s.tcp = udp, tcp
	s.conns = map[net.Conn]struct{}{}
	if s.timeout == 0 {
		s.timeout = 3 * time.Second
	}
	if udp != nil {
		s.wg.Add(1)
		go s.serveUDP()
	}
	if tcp != nil {
		s.wg.Add(1)
		go s.serveTCP()
	}
}

// close stops the server and waits for its goroutines.
func (s *dnsServer) close() {
	s.mu.Lock()
	s.closed = true
	if s.udp != nil {
		_ = s.udp.Close()
	}
	if s.tcp != nil {
		_ = s.tcp.Close()
	}
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *dnsServer) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn("dns: udp read", "err", err)
			}
			return
		}
		q := append([]byte(nil), buf[:n]...)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if resp := s.handle(q, false); resp != nil {
				_, _ = s.udp.WriteTo(resp, from)
			}
		}()
	}
}

func (s *dnsServer) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn("dns: tcp accept", "err", err)
			}
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				_ = c.Close()
			}()
			for {
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				q, err := readTCPMsg(c)
				if err != nil {
					return
				}
				resp := s.handle(q, true)
				if resp == nil || writeTCPMsg(c, resp) != nil {
					return
				}
			}
		}()
	}
}

func readTCPMsg(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	m := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(r, m); err != nil {
		return nil, err
	}
	return m, nil
}

func writeTCPMsg(w io.Writer, m []byte) error {
	b := make([]byte, 2+len(m))
	binary.BigEndian.PutUint16(b, uint16(len(m)))
	copy(b[2:], m)
	_, err := w.Write(b)
	return err
}

// handle answers one query message; nil means no answer at all.
func (s *dnsServer) handle(q []byte, tcp bool) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil || h.Response {
		return nil
	}
	qs, err := p.AllQuestions()
	if err != nil {
		return reply(h, nil, dnsmessage.RCodeFormatError)
	}
	if h.OpCode == 0 && len(qs) == 1 && qs[0].Class == dnsmessage.ClassINET &&
		(qs[0].Type == dnsmessage.TypeA || qs[0].Type == dnsmessage.TypeAAAA) {
		name := strings.ToLower(strings.TrimSuffix(qs[0].Name.String(), "."))
		if addrs := s.resolve(name); len(addrs) > 0 {
			return answer(h, qs[0], addrs)
		}
	}
	if resp := s.forward(q, h.ID, tcp); resp != nil {
		return resp
	}
	return reply(h, qs, dnsmessage.RCodeServerFailure)
}

// answer builds the reply to a question about a known name: its A records
// (several containers may share an alias), or no records (NOERROR) for AAAA
// since container networks are IPv4-only.
func answer(h dnsmessage.Header, q dnsmessage.Question, addrs []netip.Addr) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: h.ID, Response: true, Authoritative: true,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true,
	})
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	for _, addr := range addrs {
		if q.Type == dnsmessage.TypeA && addr.Is4() {
			_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: dnsTTL},
				dnsmessage.AResource{A: addr.As4()})
		}
	}
	m, err := b.Finish()
	if err != nil {
		return nil
	}
	return m
}

// reply builds an answer-less reply with rcode.
func reply(h dnsmessage.Header, qs []dnsmessage.Question, rcode dnsmessage.RCode) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: h.ID, Response: true, OpCode: h.OpCode,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true, RCode: rcode,
	})
	_ = b.StartQuestions()
	for _, q := range qs {
		_ = b.Question(q)
	}
	m, err := b.Finish()
	if err != nil {
		return nil
	}
	return m
}

// forward relays q to each upstream in turn until one answers with the same
// message ID; nil if none does.
func (s *dnsServer) forward(q []byte, id uint16, tcp bool) []byte {
	for _, up := range s.upstreams() {
		resp, err := exchange(up, q, tcp, s.timeout)
		if err != nil {
			s.log.Debug("dns: upstream", "server", up, "err", err)
			continue
		}
		if len(resp) >= 2 && binary.BigEndian.Uint16(resp) == id {
			return resp
		}
	}
	return nil
}

// exchange sends q to server and reads one reply.
func exchange(server netip.AddrPort, q []byte, tcp bool, timeout time.Duration) ([]byte, error) {
	network := "udp"
	if tcp {
		network = "tcp"
	}
	c, err := net.DialTimeout(network, server.String(), timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if tcp {
		if err := writeTCPMsg(c, q); err != nil {
			return nil, err
		}
		return readTCPMsg(c)
	}
	if _, err := c.Write(q); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}
