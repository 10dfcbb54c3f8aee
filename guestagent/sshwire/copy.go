package sshwire

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Relaying between an SSH channel and a connection, one direction at a time. Each end's relay decides what
// a failure means (abort both directions, or let the other direction drain); the pieces here are the same
// for both ends.

// copyBufSize is the buffer of one Copy: large reads from a socket let one channel write fill several SSH
// packets without another syscall.
const copyBufSize = 256 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// aLongTimeAgo is a deadline in the past: it fails a pending Read at once.
var aLongTimeAgo = time.Unix(1, 0)

// Copy copies src to dst through a pooled buffer until src reports EOF, which returns (nil, nil). Unlike
// io.Copy it tells a failure of the read side (rerr) from one of the write side (werr), and it always uses
// its buffer: no ReaderFrom/WriterTo detours.
func Copy(dst io.Writer, src io.Reader) (rerr, werr error) {
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	return copyBuf(dst, src, *buf)
}

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

// CloseWrite half-closes w: it sends EOF and keeps the read side open, for the connections and channels that
// can (*net.TCPConn, *net.UnixConn, ssh.Channel, …). It returns errors.ErrUnsupported for others.
func CloseWrite(w io.Writer) error {
	if cw, ok := w.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// StopReads makes c's pending and later Reads fail at once (a read deadline in the past), so that a Copy from
// c ends while writes to c go on.
func StopReads(c net.Conn) error {
	return c.SetReadDeadline(aLongTimeAgo)
}

// Aborter returns abort, which closes each of cs in order the first time it is called (later calls do
// nothing), and arranges for ctx ending to call abort until stop is called (stop is context.AfterFunc's).
// A relay aborts both of its ends this way on failure, on ctx's end and when it has finished.
func Aborter(ctx context.Context, cs ...io.Closer) (abort func(), stop func() bool) {
	var once sync.Once
	abort = func() {
		once.Do(func() {
			for _, c := range cs {
				c.Close()
			}
		})
	}
	return abort, context.AfterFunc(ctx, abort)
}
