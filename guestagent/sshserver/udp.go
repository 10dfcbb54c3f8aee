package sshserver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berth-dev/berth/guestagent/sshwire"
	"golang.org/x/crypto/ssh"
)

// udp serves ChannelUDP: datagrams framed on the channel, exchanged with a connected UDP socket to the
// target, until either side closes or nothing moves for UDPIdleTimeout.
func (s *Server) udp(nc ssh.NewChannel, log *slog.Logger) {
	var p sshwire.UDPOpen
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil || p.Port > 65535 {
		_ = nc.Reject(ssh.ConnectionFailed, "malformed udp payload")
		return
	}
	addr := net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port)))
	c, err := s.dial(ChannelUDP, func(ctx context.Context) (net.Conn, error) {
		return s.cfg.Dial(ctx, "udp", addr)
	})
	if err != nil {
		log.Info("udp dial failed", "addr", addr, "err", err)
		_ = nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		c.Close()
		return
	}
	relayUDP(s.ctx, ch, reqs, c, s.cfg.UDPIdleTimeout)
}

// relayUDP moves datagrams between ch (framed) and c until one side ends, ctx ends or the flow is idle.
func relayUDP(ctx context.Context, ch ssh.Channel, reqs <-chan *ssh.Request, c net.Conn, idle time.Duration) {
	abort, stop := sshwire.Aborter(ctx, c, ch)
	defer stop()
	go func() {
		for r := range reqs {
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
		abort()
	}()

	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // channel → target
		defer wg.Done()
		defer abort()
		buf := make([]byte, sshwire.MaxDatagram)
		for {
			n, err := sshwire.ReadDatagram(ch, buf)
			if err != nil {
				return
			}
			last.Store(time.Now().UnixNano())
			if _, err := c.Write(buf[:n]); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
				return
			}
		}
	}()
	go func() { // target → channel
		defer wg.Done()
		defer abort()
		const hdr = sshwire.DatagramHeaderLen
		buf := make([]byte, hdr+sshwire.MaxDatagram)
		for {
			deadline := time.Unix(0, last.Load()).Add(idle)
			if !time.Now().Before(deadline) {
				return // idle
			}
			_ = c.SetReadDeadline(deadline)
			n, err := c.Read(buf[hdr:])
			if err != nil {
				var ne net.Error
				if (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, syscall.ECONNREFUSED) {
					continue // re-check idleness; an ICMP refusal is not fatal for UDP
				}
				return
			}
			last.Store(time.Now().UnixNano())
			sshwire.PutDatagramHeader(buf, n)
			if _, err := ch.Write(buf[:hdr+n]); err != nil {
				return
			}
		}
	}()
	wg.Wait()
}
