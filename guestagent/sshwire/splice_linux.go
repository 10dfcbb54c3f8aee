package sshwire

import (
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// splicePipeSize is the capacity asked for each relay direction's pipe (the default maximum an unprivileged
// process may set, /proc/sys/fs/pipe-max-size).
const splicePipeSize = 1 << 20

// copySockets copies src to dst until EOF like io.Copy, through a pipe of its own with splice(2) when both
// are TCP or unix stream sockets: the bytes stay in the kernel. Unlike io.Copy's splice, whose pipes go
// back to a pool that only the garbage collector empties, the pipe is closed on return, so a burst of
// relays leaves no descriptors behind.
func copySockets(dst, src net.Conn) (int64, error) {
	if !spliceable(dst) || !spliceable(src) {
		return io.Copy(dst, src)
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return io.Copy(dst, src)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	_, _ = unix.FcntlInt(uintptr(p[0]), unix.F_SETPIPE_SZ, splicePipeSize)
	rc, err := src.(syscall.Conn).SyscallConn()
	if err != nil {
		return 0, err
	}
	wc, err := dst.(syscall.Conn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var total int64
	for {
		// Fill the (empty) pipe from src: EAGAIN can only mean that src has nothing to read.
		var n int
		var serr error
		err := rc.Read(func(fd uintptr) bool {
			n, serr = splice(int(fd), p[1], splicePipeSize)
			return serr != unix.EAGAIN
		})
		if err == nil {
			err = serr
		}
		if err != nil {
			return total, opError("read", src, err)
		}
		if n == 0 {
			return total, nil // EOF
		}
		// Drain it into dst: EAGAIN means dst's send buffer is full (backpressure).
		for n > 0 {
			var m int
			err := wc.Write(func(fd uintptr) bool {
				m, serr = splice(p[0], int(fd), n)
				return serr != unix.EAGAIN
			})
			if err == nil {
				err = serr
			}
			if err != nil {
				return total, opError("write", dst, err)
			}
			n -= m
			total += int64(m)
		}
	}
}

// splice moves up to n bytes from fd in to fd out without blocking, retrying on EINTR.
func splice(in, out, n int) (int, error) {
	for {
		m, err := unix.Splice(in, nil, out, nil, n, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		if err == unix.EINTR {
			continue
		}
		return int(m), err
	}
}

// spliceable: a TCP socket, or a unix socket whose address says it is a stream one.
func spliceable(c net.Conn) bool {
	switch c.(type) {
	case *net.TCPConn:
		return true
	case *net.UnixConn:
		for _, a := range []net.Addr{c.LocalAddr(), c.RemoteAddr()} {
			if a != nil {
				return a.Network() == "unix"
			}
		}
	}
	return false
}

// opError wraps a splice failure the way net does, so that os.ErrDeadlineExceeded and net.ErrClosed stay
// detectable with errors.Is.
func opError(op string, c net.Conn, err error) error {
	network := "tcp"
	if _, ok := c.(*net.UnixConn); ok {
		network = "unix"
	}
	return &net.OpError{Op: op, Net: network, Addr: c.RemoteAddr(), Err: err}
}
