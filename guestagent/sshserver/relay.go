package sshserver

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// relayBufSize is the copy buffer per direction: large reads from the socket let one Write fill several SSH
// packets without another syscall.
const relayBufSize = 256 << 10

// drainTimeout bounds how long buffered channel data may wait for a slow target once the peer has closed.
const drainTimeout = 30 * time.Second

var bufPool = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}

// aLongTimeAgo is a deadline in the past, to unblock a pending Read.
var aLongTimeAgo = time.Unix(1, 0)

// copyBuf copies src to dst through buf until src reports EOF. It tells apart the read and the write side
// of a failure, which io.CopyBuffer does not (and it always uses buf: no ReaderFrom/WriterTo detours).
func copyBuf(dst io.Writer, src io.Reader, buf []byte) (rerr, werr error) {
	for {
		n, err := src.Read(buf)
		if n > 0 {
			w, err := dst.Write(buf[:n])
			if err == nil && w != n {
				err = io.ErrShortWrite
			}
			if err != nil {
				return nil, err
			}
		}
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return err, nil
		}
	}
}

// closeWrite half-closes c if it can.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// relay copies between an accepted channel and a connection to its target until both directions end, then
// closes both. EOF in one direction becomes a half-close on the other side (CloseWrite); a failure of the
// target aborts both; the peer closing the channel (or the SSH connection dying) stops reading the target
// but lets data already received drain into it. ctx ending aborts everything.
func relay(ctx context.Context, ch ssh.Channel, reqs <-chan *ssh.Request, c net.Conn) {
	var once sync.Once
	abort := func() {
		once.Do(func() {
			c.Close()
			ch.Close()
		})
	}
	stop := context.AfterFunc(ctx, abort)
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
		_ = c.SetReadDeadline(aLongTimeAgo)
		_ = c.SetWriteDeadline(time.Now().Add(drainTimeout))
	}()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // channel → target
		defer wg.Done()
		buf := bufPool.Get().(*[]byte)
		defer bufPool.Put(buf)
		if _, werr := copyBuf(c, ch, *buf); werr != nil {
			abort()
			return
		}
		closeWrite(c)
	}()
	go func() { // target → channel
		defer wg.Done()
		buf := bufPool.Get().(*[]byte)
		defer bufPool.Put(buf)
		rerr, werr := copyBuf(ch, c, *buf)
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
