package sshserver

import (
	"bufio"
	"net"
	"sync"
)

// Buffering of the byte stream under SSH. x/crypto reads each packet with two small reads and writes each
// packet (at most 32 KiB of channel data) with its own write under the connection's lock, so a bulk
// transfer costs several syscalls per packet and encryption waits for each write. bufConn reads ahead into
// a large buffer and hands writes to a flusher goroutine that writes whatever has queued in one syscall,
// overlapping the next packet's encryption with the previous packet's write.

const (
	streamReadBuf   = 256 << 10
	streamMaxQueued = 1 << 20 // writers block beyond this (backpressure)
)

type bufConn struct {
	net.Conn
	r *bufio.Reader

	mu      sync.Mutex
	cond    sync.Cond
	queued  []byte // waiting for the flusher
	writing []byte // being written by the flusher
	err     error  // sticky write error, or net.ErrClosed after Close
}

func newBufConn(c net.Conn) *bufConn {
	b := &bufConn{Conn: c, r: bufio.NewReaderSize(c, streamReadBuf)}
	b.cond.L = &b.mu
	go b.flush()
	return b
}

func (b *bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// Write queues p and returns; a failure of the underlying write is reported by a later Write.
func (b *bufConn) Write(p []byte) (int, error) {
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

func (b *bufConn) flush() {
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
func (b *bufConn) Close() error {
	b.mu.Lock()
	if b.err == nil {
		b.err = net.ErrClosed
	}
	b.cond.Broadcast()
	b.mu.Unlock()
	return b.Conn.Close()
}
