// Command tcpbench measures TCP throughput for bench/portfwd.sh.
//
//	tcpbench sink  -l ADDR            read each connection to EOF, then answer the byte count (8 bytes, big endian)
//	tcpbench send  -c ADDR -n BYTES   write BYTES, half-close, wait for the sink's count; print "bytes seconds gbit/s"
//	tcpbench relay -l ADDR -to ADDR   a plain io.Copy relay (both ways, EOF becomes CloseWrite);
//	                                  -berth: berth's sshwire.Relay instead (the agent's handoff relay)
//
// The sender's clock stops only when the sink has counted every byte, so data still in socket or relay
// buffers is never counted as delivered. Build it static (CGO_ENABLED=0): the sink also runs in a container.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/berth-dev/berth/guestagent/sshwire"
)

const bufSize = 256 << 10

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tcpbench sink|send|relay [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	listen := fs.String("l", "127.0.0.1:5001", "listen address (sink, relay)")
	connect := fs.String("c", "", "address to send to (send)")
	to := fs.String("to", "", "address to relay to (relay)")
	berth := fs.Bool("berth", false, "relay with berth's sshwire.Relay (own splice pipes) instead of io.Copy (relay)")
	n := fs.Int64("n", 1<<30, "bytes to send (send)")
	_ = fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "sink":
		err = sink(*listen)
	case "send":
		err = send(*connect, *n)
	case "relay":
		err = relay(*listen, *to, *berth)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tcpbench:", err)
		os.Exit(1)
	}
}

func serve(addr string, handle func(net.Conn)) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	fmt.Println("listening", l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			return fmt.Errorf("accept %s: %w", addr, err)
		}
		go handle(c)
	}
}

func sink(addr string) error {
	return serve(addr, func(c net.Conn) {
		defer c.Close()
		buf := make([]byte, bufSize)
		var total uint64
		for {
			k, err := c.Read(buf)
			total += uint64(k)
			if errors.Is(err, io.EOF) {
				var ack [8]byte
				binary.BigEndian.PutUint64(ack[:], total)
				_, _ = c.Write(ack[:])
				return
			}
			if err != nil {
				return
			}
		}
	})
}

func send(addr string, n int64) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	defer c.Close()
	buf := make([]byte, bufSize)
	start := time.Now()
	for left := n; left > 0; {
		k := int64(len(buf))
		if left < k {
			k = left
		}
		w, err := c.Write(buf[:k])
		if err != nil {
			return fmt.Errorf("write %s: %w", addr, err)
		}
		left -= int64(w)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return fmt.Errorf("close-write %s: %w", addr, err)
	}
	var ack [8]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		return fmt.Errorf("read acknowledgement from %s: %w", addr, err)
	}
	d := time.Since(start).Seconds()
	if got := binary.BigEndian.Uint64(ack[:]); got != uint64(n) {
		return fmt.Errorf("sink at %s counted %d bytes, sent %d", addr, got, n)
	}
	fmt.Printf("%d %.6f %.3f\n", n, d, float64(n)*8/d/1e9)
	return nil
}

func relay(addr, to string, berth bool) error {
	return serve(addr, func(a net.Conn) {
		defer a.Close()
		b, err := net.Dial("tcp", to)
		if err != nil {
			return
		}
		defer b.Close()
		if berth {
			sshwire.Relay(context.Background(), a, b)
			return
		}
		done := make(chan struct{})
		go func() {
			_, _ = io.Copy(b, a)
			_ = b.(*net.TCPConn).CloseWrite()
			close(done)
		}()
		_, _ = io.Copy(a, b)
		_ = a.(*net.TCPConn).CloseWrite()
		<-done
	})
}
