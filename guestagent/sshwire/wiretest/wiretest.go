// Package wiretest has the loopback echo servers and clients that the tests of both ends' relays share
// (sshserver, transport, portfwd, apisocket, hostagent, the e2e suites).
package wiretest

import (
	"io"
	"net"
	"testing"
	"time"
)

// EchoServe echoes every connection l accepts, each in its own goroutine, until l is closed: it copies
// the connection back to itself until the client's EOF, then half-closes (where the connection can) and
// closes.
func EchoServe(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
			if cw, ok := c.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
		}()
	}
}

// Echo starts EchoServe on a free 127.0.0.1 port, closed when the test ends, and returns its address.
func Echo(t testing.TB) *net.TCPAddr {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go EchoServe(l)
	return l.Addr().(*net.TCPAddr)
}

// EchoOnce sends msg to the TCP address addr while reading, half-closes, and returns everything that came
// back until EOF; the whole exchange is bounded by timeout. A read error wins over a write error.
func EchoOnce(addr string, msg []byte, timeout time.Duration) ([]byte, error) {
	c, err := net.DialTimeout("tcp", addr, min(timeout, 5*time.Second))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if e := <-werr; e != nil && err == nil {
		err = e
	}
	return got, err
}
