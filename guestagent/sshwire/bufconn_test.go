package sshwire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestBufConn(t *testing.T) {
	a, b := net.Pipe()
	bc := NewBufConn(a)
	// Writes return before the peer reads (net.Pipe alone would block) and arrive in order.
	for _, s := range []string{"one ", "two ", "three"} {
		if _, err := bc.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, len("one two three"))
	if _, err := io.ReadFull(b, got); err != nil || string(got) != "one two three" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	// Reads go through the read-ahead buffer.
	go b.Write([]byte("back"))
	rb := make([]byte, 4)
	if _, err := io.ReadFull(bc, rb); err != nil || string(rb) != "back" {
		t.Fatalf("read %q, %v", rb, err)
	}
	// Backpressure: with nobody reading, Write blocks once streamMaxQueued bytes wait.
	blocked := make(chan error, 1)
	go func() {
		big := bytes.Repeat([]byte{1}, streamMaxQueued)
		_, err := bc.Write(big) // queued (the flusher is stuck writing)
		if err == nil {
			_, err = bc.Write(big) // may be queued once the flusher takes the first batch
		}
		if err == nil {
			_, err = bc.Write(big) // must block
		}
		blocked <- err
	}()
	select {
	case err := <-blocked:
		t.Fatalf("writes beyond the queue limit did not block (err %v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	// Close unblocks the writer with an error and later writes fail.
	bc.Close()
	if err := <-blocked; err == nil {
		t.Fatal("blocked Write returned nil after Close")
	}
	if _, err := bc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close = %v", err)
	}
}
