package sshwire

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// shortWriter accepts all but the last byte of every Write, without an error.
type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return max(len(p)-1, 0), nil }

// failWriter fails every Write.
type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestCopy(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), copyBufSize/5) // two buffers' worth
	var dst bytes.Buffer
	if rerr, werr := Copy(&dst, bytes.NewReader(data)); rerr != nil || werr != nil || !bytes.Equal(dst.Bytes(), data) {
		t.Fatalf("Copy = %v, %v, %d bytes copied", rerr, werr, dst.Len())
	}

	// A read failure is rerr, after what was read before it has been written.
	boom := errors.New("boom")
	dst.Reset()
	rerr, werr := Copy(&dst, io.MultiReader(strings.NewReader("abc"), errReader{boom}))
	if !errors.Is(rerr, boom) || werr != nil || dst.String() != "abc" {
		t.Fatalf("read failure: rerr %v, werr %v, copied %q", rerr, werr, dst.String())
	}

	// A write failure is werr, and a short write is one too.
	full := errors.New("full")
	rerr, werr = Copy(failWriter{full}, strings.NewReader("x"))
	if rerr != nil || !errors.Is(werr, full) {
		t.Fatalf("write failure: rerr %v, werr %v", rerr, werr)
	}
	rerr, werr = Copy(shortWriter{}, strings.NewReader("abc"))
	if rerr != nil || !errors.Is(werr, io.ErrShortWrite) {
		t.Fatalf("short write: rerr %v, werr %v", rerr, werr)
	}
}

func TestCloseWrite(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The peer sees EOF while the other direction still works.
	if err := CloseWrite(c); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(s); err != nil || len(b) != 0 {
		t.Fatalf("peer read after CloseWrite = %q, %v", b, err)
	}
	if _, err := s.Write([]byte("back")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "back" {
		t.Fatalf("read after CloseWrite = %q, %v", buf, err)
	}
	if err := CloseWrite(&bytes.Buffer{}); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("CloseWrite of a buffer = %v", err)
	}
}

func TestStopReads(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	done := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 1))
		done <- err
	}()
	if err := StopReads(a); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("pending Read = %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pending Read not stopped")
	}
	// Writes still go through.
	go func() { _, _ = b.Read(make([]byte, 2)) }()
	if _, err := a.Write([]byte("ok")); err != nil {
		t.Fatalf("Write after StopReads = %v", err)
	}
}

// closeCounter counts its Close calls and records their order in log.
type closeCounter struct {
	name  string
	log   *[]string
	calls atomic.Int32
}

func (c *closeCounter) Close() error {
	c.calls.Add(1)
	*c.log = append(*c.log, c.name)
	return nil
}

func TestAborter(t *testing.T) {
	var log []string
	a, b := &closeCounter{name: "a", log: &log}, &closeCounter{name: "b", log: &log}
	abort, stop := Aborter(context.Background(), a, b)
	abort()
	abort()
	if !slices.Equal(log, []string{"a", "b"}) || a.calls.Load() != 1 || b.calls.Load() != 1 {
		t.Fatalf("closes %v (a %d, b %d), want a and b once each", log, a.calls.Load(), b.calls.Load())
	}
	stop()

	// ctx ending aborts; after stop it does not.
	ctx, cancel := context.WithCancel(context.Background())
	closed := make(chan struct{})
	_, stop = Aborter(ctx, closerFunc(func() error { close(closed); return nil }))
	defer stop()
	cancel()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("ctx ending did not abort")
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	_, stop = Aborter(ctx, closerFunc(func() error { t.Error("closed after stop"); return nil }))
	if !stop() {
		t.Fatal("stop found the abort already started")
	}
	cancel()
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
