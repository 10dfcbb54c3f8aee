package portfwd

import (
	"context"
	"net"
	"sync"
	"time"
)

// maxDatagram is the largest UDP payload.
const maxDatagram = 1<<16 - 1

// udpFlow is one client address's flow through the agent.
type udpFlow struct {
	conn net.Conn
	last time.Time // last datagram either way; guarded by the server's mutex
}

// serveUDP relays datagrams between host clients and the target: one flow (berth UDP channel) per client
// address, ended after UDPIdleTimeout without traffic. It returns when ctx ends, closing pc and every flow.
func (m *Manager) serveUDP(ctx context.Context, pc net.PacketConn, f Forward) {
	var (
		mu    sync.Mutex
		flows = map[string]*udpFlow{}
		wg    sync.WaitGroup
	)
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	defer wg.Wait()
	defer func() {
		pc.Close()
		mu.Lock()
		for _, fl := range flows {
			fl.conn.Close()
		}
		mu.Unlock()
	}()

	// Expire idle flows.
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(max(m.cfg.UDPIdleTimeout/4, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				mu.Lock()
				for k, fl := range flows {
					if now.Sub(fl.last) > m.cfg.UDPIdleTimeout {
						fl.conn.Close()
						delete(flows, k)
					}
				}
				mu.Unlock()
			}
		}
	}()

	buf := make([]byte, maxDatagram)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("udp forward stopped", "listen", f.Listen, "err", err)
			}
			return
		}
		key := addr.String()
		mu.Lock()
		fl := flows[key]
		mu.Unlock()
		if fl == nil {
			conn, err := m.cfg.Dialer.DialUDP(ctx, f.Target)
			if err != nil {
				if ctx.Err() == nil {
					m.log.Warn("udp flow failed", "listen", f.Listen, "target", f.Target, "err", err)
				}
				continue
			}
			fl = &udpFlow{conn: conn, last: time.Now()}
			mu.Lock()
			flows[key] = fl
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				rb := make([]byte, maxDatagram)
				for {
					n, err := conn.Read(rb)
					if err != nil {
						break
					}
					mu.Lock()
					fl.last = time.Now()
					mu.Unlock()
					if _, err := pc.WriteTo(rb[:n], addr); err != nil {
						break
					}
				}
				conn.Close()
				mu.Lock()
				if flows[key] == fl {
					delete(flows, key)
				}
				mu.Unlock()
			}()
		}
		mu.Lock()
		fl.last = time.Now()
		mu.Unlock()
		if _, err := fl.conn.Write(buf[:n]); err != nil {
			fl.conn.Close()
		}
	}
}
