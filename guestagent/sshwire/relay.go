package sshwire

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
)

// Relay copies between a and b until both directions end, then closes both. EOF from one side half-closes
// the other (CloseWrite where supported); a read error aborts both. When a side that has a Done channel (the
// host transport's channel conns: `Done() <-chan struct{}`) goes away, reading from the other side stops and
// data already received still drains. ctx ending aborts both. Between two sockets the copies are io.Copy's,
// so the kernel splices on Linux.
func Relay(ctx context.Context, a, b net.Conn) {
	abort, stop := Aborter(ctx, a, b)
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
		if StopReads(other) != nil {
			abort()
		}
	}()
}

// pump copies src to dst. dstGone tells that reads from src were stopped because dst went away.
func pump(dst, src net.Conn, dstGone *atomic.Bool, abort func()) {
	if !hasDone(src) && !hasDone(dst) {
		// Two sockets: copySockets lets the kernel splice, and any failure ends both directions.
		if _, err := copySockets(dst, src); err != nil {
			abort()
		} else {
			_ = CloseWrite(dst)
		}
		return
	}
	rerr, werr := Copy(dst, src)
	switch {
	case rerr != nil && !dstGone.Load():
		abort() // src failed
	case rerr != nil || werr != nil:
		// dst is gone; the other direction decides when to finish.
	default:
		_ = CloseWrite(dst)
	}
}
