package sshwire

import (
	"net"
	"sync"
)

// Buffering of the byte stream under SSH. x/crypto reads each packet with two small reads and writes each
// packet (at most 32 KiB of channel data) with its own write under the connection's lock, so a bulk
// transfer costs several syscalls per packet and encryption waits for each write. BufConn reads ahead into
// a large buffer and hands writes to a flusher goroutine that writes whatever has queued in one syscall,
// overlapping the next packet's encryption with the previous packet's write.
//
// Reading never waits for the application: a reader goroutine drains the socket as fast as it can. x/crypto's
// read loop itself writes (a channel-close reply) and blocks when the write side is congested; if both ends
// stopped reading while congested, both read loops would wait on writes that the other end no longer reads:
// a deadlock under full-duplex load with many channels. What the reader holds is bounded by the SSH channel
// windows this end granted.

const (
	streamReadBuf   = 256 << 10
	streamMinRead   = 16 << 10
	streamMaxQueued = 1 << 20 // writers block beyond this (backpressure)
)

// BufConn buffers the byte stream under an SSH connection: a reader goroutine reads ahead in large chunks
// and a flusher goroutine writes whatever has queued in one syscall, with backpressure beyond 1 MiB (the
// comment above explains why, and why reading never waits for the application). Hand NewBufConn's result
// to ssh.NewServerConn or ssh.NewClientConn instead of the raw connection. Deadlines and addresses are the
// underlying connection's.
type BufConn struct {
	net.Conn

	rmu   sync.Mutex
	rcond sync.Cond
	rq    [][]byte // received, not yet read
	rerr  error    // the reader's final error

	mu      sync.Mutex
	cond    sync.Cond
	queued  []byte // waiting for the flusher
	writing []byte // being written by the flusher
	err     error  // sticky write error, or net.ErrClosed after Close
}

// NewBufConn wraps c and starts its reader and flusher goroutines; they end when c fails or is closed, so
// the caller must Close the BufConn.
func NewBufConn(c net.Conn) *BufConn {
	b := &BufConn{Conn: c}
	b.cond.L = &b.mu
	b.rcond.L = &b.rmu
	go b.flush()
	go b.read()
	return b
}

func (b *BufConn) read() {
	var slab []byte
	for {
		if len(slab) < streamMinRead {
			slab = make([]byte, streamReadBuf)
		}
		n, err := b.Conn.Read(slab)
		b.rmu.Lock()
		if n > 0 {
			b.rq = append(b.rq, slab[:n:n])
			slab = slab[n:]
		}
		if err != nil {
			b.rerr = err
		}
		b.rcond.Broadcast()
		b.rmu.Unlock()
		if err != nil {
			return
		}
	}
}

func (b *BufConn) Read(p []byte) (int, error) {
	b.rmu.Lock()
	defer b.rmu.Unlock()
	for len(b.rq) == 0 && b.rerr == nil {
		b.rcond.Wait()
	}
	if len(b.rq) == 0 {
		return 0, b.rerr
	}
	n := 0
	for n < len(p) && len(b.rq) > 0 {
		c := copy(p[n:], b.rq[0])
		n += c
		if b.rq[0] = b.rq[0][c:]; len(b.rq[0]) == 0 {
			b.rq[0] = nil
			b.rq = b.rq[1:]
		}
	}
	return n, nil
}

// Write queues p and returns; a failure of the underlying write is reported by a later Write.
func (b *BufConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.err == nil && len(b.queued) >= streamMaxQueued {
		b.cond.Wait()
	}
	if b.err != nil {
		return 0, b.err
	}
	b.queued = append(b.queued, p...)
	b.cond.Broadcast()
	return len(p), nil
}

func (b *BufConn) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		for b.err == nil && len(b.queued) == 0 {
			b.cond.Wait()
		}
		if b.err != nil {
			return
		}
		b.queued, b.writing = b.writing[:0], b.queued
		b.cond.Broadcast()
		b.mu.Unlock()
		_, err := b.Conn.Write(b.writing)
		b.mu.Lock()
		if err != nil {
			if b.err == nil {
				b.err = err
			}
			b.cond.Broadcast()
			return
		}
	}
}

// Close closes the connection; queued data that was not written yet is dropped.
func (b *BufConn) Close() error {
	b.mu.Lock()
	if b.err == nil {
		b.err = net.ErrClosed
	}
	b.cond.Broadcast()
	b.mu.Unlock()
	return b.Conn.Close()
}
