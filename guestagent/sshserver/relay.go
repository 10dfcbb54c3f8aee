package sshserver

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/guestagent/sshwire"
	"golang.org/x/crypto/ssh"
)

// drainTimeout bounds how long buffered channel data may wait for a slow target once the peer has closed.
const drainTimeout = 30 * time.Second

// relay copies between an accepted channel and a connection to its target until both directions end, then
// closes both. EOF in one direction becomes a half-close on the other side (CloseWrite); a failure of the
// target aborts both; the peer closing the channel (or the SSH connection dying) stops reading the target
// but lets data already received drain into it. ctx ending aborts everything.
func relay(ctx context.Context, ch ssh.Channel, reqs <-chan *ssh.Request, c net.Conn) {
	abort, stop := sshwire.Aborter(ctx, c, ch)
	defer stop()

	var peerGone atomic.Bool
	go func() {
		// Ends when the channel is closed: by the peer, by abort (after the peer's reply) or with the connection.
		for r := range reqs {
			if r.WantReply {
				_ = r.Reply(false, nil)
			}
		}
		peerGone.Store(true)
		_ = sshwire.StopReads(c)
		_ = c.SetWriteDeadline(time.Now().Add(drainTimeout))
	}()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // channel → target
		defer wg.Done()
		if _, werr := sshwire.Copy(c, ch); werr != nil {
			abort()
			return
		}
		_ = sshwire.CloseWrite(c)
	}()
	go func() { // target → channel
		defer wg.Done()
		rerr, werr := sshwire.Copy(ch, c)
		switch {
		case rerr != nil && !peerGone.Load():
			abort() // the target failed
		case rerr != nil || werr != nil:
			// The channel is gone; the other direction drains what was already received.
		default:
			_ = ch.CloseWrite()
		}
	}()
	wg.Wait()
	abort()
}
