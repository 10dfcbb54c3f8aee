package sshwire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// connPair returns both ends of a connection over network ("tcp" or "unix").
func connPair(t *testing.T, network string) (net.Conn, net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s")
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err := net.Dial(network, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestCopySockets: splice between TCP and unix sockets delivers every byte, ends at EOF, and closes its
// pipe.
func TestCopySockets(t *testing.T) {
	for _, nets := range [][2]string{{"tcp", "tcp"}, {"unix", "tcp"}, {"tcp", "unix"}} {
		t.Run(nets[0]+"→"+nets[1], func(t *testing.T) {
			in, src := connPair(t, nets[0])
			dst, out := connPair(t, nets[1])
			if !spliceable(src) || !spliceable(dst) {
				t.Fatalf("spliceable(%T)=%v spliceable(%T)=%v", src, spliceable(src), dst, spliceable(dst))
			}
			data := make([]byte, 8<<20+123)
			for i := range data {
				data[i] = byte(i * 7)
			}
			before := openFDs(t)
			go func() {
				_, _ = in.Write(data)
				_ = CloseWrite(in)
			}()
			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(out)
				got <- b
			}()
			n, err := copySockets(dst, src)
			if err != nil || n != int64(len(data)) {
				t.Fatalf("copySockets = %d, %v; want %d", n, err, len(data))
			}
			if after := openFDs(t); after != before {
				t.Fatalf("descriptors: %d before, %d after (the pipe was not closed)", before, after)
			}
			_ = CloseWrite(dst)
			if b := <-got; !bytes.Equal(b, data) {
				t.Fatalf("received %d bytes, not the %d sent", len(b), len(data))
			}
		})
	}
}

// TestCopySocketsStopReads: a read deadline in the past ends a splice waiting for data, with an error
// that says so.
func TestCopySocketsStopReads(t *testing.T) {
	_, src := connPair(t, "tcp")
	dst, _ := connPair(t, "tcp")
	done := make(chan error, 1)
	go func() { _, err := copySockets(dst, src); done <- err }()
	time.Sleep(50 * time.Millisecond)
	if err := StopReads(src); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("copySockets after StopReads = %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("copySockets did not stop")
	}
}

// TestCopySocketsPeerGone: writing into a connection whose peer has gone fails instead of spinning.
func TestCopySocketsPeerGone(t *testing.T) {
	in, src := connPair(t, "tcp")
	dst, out := connPair(t, "tcp")
	out.Close()
	go func() {
		buf := make([]byte, 1<<20)
		for {
			if _, err := in.Write(buf); err != nil {
				return
			}
		}
	}()
	done := make(chan error, 1)
	go func() { _, err := copySockets(dst, src); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("copySockets into a closed peer returned nil")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("copySockets into a closed peer did not fail")
	}
}
