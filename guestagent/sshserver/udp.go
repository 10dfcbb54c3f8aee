package sshserver

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// maxDatagram is the largest datagram a frame can carry (its length is a uint16).
const maxDatagram = 1<<16 - 1

// udp serves ChannelUDP: datagrams framed on the channel, exchanged with a connected UDP socket to the
// target, until either side closes or nothing moves for UDPIdleTimeout.
func (s *Server) udp(nc ssh.NewChannel, log *slog.Logger) {
	var p udpOpen
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
	var once sync.Once
	abort := func() {
		once.Do(func() {
			c.Close()
			ch.Close()
		})
	}
	stop := context.AfterFunc(ctx, abort)
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
		buf := make([]byte, maxDatagram)
		for {
			n, err := readFrame(ch, buf)
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
		buf := make([]byte, 2+maxDatagram)
		for {
			deadline := time.Unix(0, last.Load()).Add(idle)
			if !time.Now().Before(deadline) {
				return // idle
			}
			_ = c.SetReadDeadline(deadline)
			n, err := c.Read(buf[2:])
			if err != nil {
				var ne net.Error
				if (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, syscall.ECONNREFUSED) {
					continue // re-check idleness; an ICMP refusal is not fatal for UDP
				}
				return
			}
			last.Store(time.Now().UnixNano())
			binary.BigEndian.PutUint16(buf, uint16(n))
			if _, err := ch.Write(buf[:2+n]); err != nil {
				return
			}
		}
	}()
	wg.Wait()
}

// readFrame reads one length-prefixed datagram into buf and returns its length.
func readFrame(r io.Reader, buf []byte) (int, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return 0, err
	}
	return n, nil
}
