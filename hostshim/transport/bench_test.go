package transport

import (
	"context"
	"io"
	"net"
	"testing"
)

// sinkServer accepts connections, reads each to EOF and then answers one byte, so a sender knows all its
// bytes arrived.
func sinkServer(b *testing.B) string {
	b.Helper()
	l := listenTCP(b)
	go serveConns(l, func(c net.Conn) {
		buf := make([]byte, 256<<10)
		for {
			_, err := c.Read(buf)
			if err == io.EOF {
				c.Write([]byte{1})
				return
			}
			if err != nil {
				return
			}
		}
	})
	return l.Addr().String()
}

// sendAll writes size bytes to addr, half-closes and waits for the sink's acknowledgement.
func sendAll(b *testing.B, addr string, size int64) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	for sent := int64(0); sent < size; sent += int64(len(buf)) {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkForwardThroughput pushes 1 GiB per iteration through a raw loopback connection, through Forward
// with a plain TCP dial (an io.Copy relay), and through Forward over the SSH transport (DialTCP), and
// reports MB/s for each. Run with -benchtime=1x.
func BenchmarkForwardThroughput(b *testing.B) {
	const size = 1 << 30
	sink := sinkServer(b)
	forward := func(b *testing.B, dial func(ctx context.Context) (net.Conn, error)) string {
		l := listenTCP(b)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { Forward(ctx, l, dial); close(done) }()
		b.Cleanup(func() { cancel(); <-done })
		return l.Addr().String()
	}
	run := func(b *testing.B, addr string) {
		b.SetBytes(size)
		b.ResetTimer()
		cpu := processCPU()
		for range b.N {
			sendAll(b, addr, size)
		}
		// CPU per GiB (sender, relays, both SSH ends and sink together) is steadier than MB/s on a busy host.
		b.ReportMetric(float64((processCPU()-cpu).Milliseconds())/float64(b.N), "cpu-ms/GiB")
	}
	b.Run("loopback", func(b *testing.B) { run(b, sink) })
	b.Run("relay", func(b *testing.B) {
		var d net.Dialer
		run(b, forward(b, func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", sink) }))
	})
	b.Run("ssh", func(b *testing.B) {
		a := startAgent(b, nil)
		c := a.client(b, nil)
		if err := c.Connect(context.Background()); err != nil {
			b.Fatal(err)
		}
		run(b, forward(b, func(ctx context.Context) (net.Conn, error) { return c.DialTCP(ctx, sink) }))
	})
}
