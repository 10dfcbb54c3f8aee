package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/berth-dev/berth/guestagent/sshwire"
)

// Forward accepts connections on l and relays each to a connection from dial, both ways, with half-close
// (EOF one way becomes CloseWrite on the other side) and backpressure (a bounded buffer per direction). A
// connection whose dial fails is closed (dial reports its own errors). Forward returns when ctx ends
// (ctx.Err()) or l fails (that error); it closes l, then closes the connections still being relayed and
// waits for them.
func Forward(ctx context.Context, l net.Listener, dial func(ctx context.Context) (net.Conn, error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // runs before wg.Wait: aborts the relays
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.Close()
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := dial(ctx)
			if err != nil {
				c.Close()
				return
			}
			Relay(ctx, c, r)
		}()
	}
}

// Relay copies between a and b until both directions end, then closes both. EOF from one side half-closes
// the other (CloseWrite where supported); a read error aborts both. When a side that has a Done channel (a
// *Conn) goes away, reading from the other side stops and data already received still drains. ctx ending
// aborts both.
func Relay(ctx context.Context, a, b net.Conn) {
	abort, stop := sshwire.Aborter(ctx, a, b)
	defer stop()

	finished := make(chan struct{})
	defer close(finished)
	var aGone, bGone atomic.Bool
	watchGone(a, &aGone, b, abort, finished)
	watchGone(b, &bGone, a, abort, finished)

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		pump(b, a, &bGone, abort)
	}()
	go func() {
		defer wg.Done()
		pump(a, b, &aGone, abort)
	}()
	wg.Wait()
	abort()
}

func hasDone(c net.Conn) bool {
	_, ok := c.(interface{ Done() <-chan struct{} })
	return ok
}

// watchGone: if x reports its peer going away, it marks gone and stops reads from other (or aborts if
// other has no deadlines).
func watchGone(x net.Conn, gone *atomic.Bool, other net.Conn, abort func(), finished <-chan struct{}) {
	d, ok := x.(interface{ Done() <-chan struct{} })
	if !ok {
		return
	}
	go func() {
		select {
		case <-d.Done():
		case <-finished:
			return
		}
		gone.Store(true)
		// Writes to other are not bounded: data x already received drains to a reader that may be slow
		// (a paused pager); ctx bounds the relay.
		if sshwire.StopReads(other) != nil {
			abort()
		}
	}()
}

// pump copies src to dst. dstGone tells that reads from src were stopped because dst went away.
func pump(dst, src net.Conn, dstGone *atomic.Bool, abort func()) {
	if !hasDone(src) && !hasDone(dst) {
		// Two sockets: io.Copy lets the kernel splice, and any failure ends both directions.
		if _, err := io.Copy(dst, src); err != nil {
			abort()
		} else {
			_ = sshwire.CloseWrite(dst)
		}
		return
	}
	rerr, werr := sshwire.Copy(dst, src)
	switch {
	case rerr != nil && !dstGone.Load():
		abort() // src failed
	case rerr != nil || werr != nil:
		// dst is gone; the other direction decides when to finish.
	default:
		_ = sshwire.CloseWrite(dst)
	}
}
