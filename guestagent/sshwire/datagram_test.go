package sshwire

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestDatagramFraming(t *testing.T) {
	big := bytes.Repeat([]byte("z"), MaxDatagram)
	var stream []byte
	for _, d := range [][]byte{[]byte("dns?"), {}, big, []byte("truncated"), []byte("next")} {
		stream = AppendDatagram(stream, d)
	}
	r := bytes.NewReader(stream)
	buf := make([]byte, MaxDatagram)
	for _, want := range [][]byte{[]byte("dns?"), {}, big} {
		n, err := ReadDatagram(r, buf)
		if err != nil || !bytes.Equal(buf[:n], want) {
			t.Fatalf("ReadDatagram = %d bytes, %v; want %d bytes", n, err, len(want))
		}
	}
	// A short buffer truncates one datagram and the next is intact.
	small := make([]byte, 4)
	if n, err := ReadDatagram(r, small); err != nil || string(small[:n]) != "trun" {
		t.Fatalf("truncated read = %q, %v", small[:n], err)
	}
	if n, err := ReadDatagram(r, small); err != nil || string(small[:n]) != "next" {
		t.Fatalf("read after truncation = %q, %v", small[:n], err)
	}
	if _, err := ReadDatagram(r, buf); err != io.EOF {
		t.Fatalf("read at the end = %v, want io.EOF", err)
	}
}

func TestDatagramPutHeader(t *testing.T) {
	frame := make([]byte, DatagramHeaderLen+5)
	copy(frame[DatagramHeaderLen:], "hello")
	PutDatagramHeader(frame, 5)
	if want := AppendDatagram(nil, []byte("hello")); !bytes.Equal(frame, want) {
		t.Fatalf("frame %x, want %x", frame, want)
	}
}

func TestDatagramTruncatedStream(t *testing.T) {
	frame := AppendDatagram(nil, []byte("hello"))
	for _, cut := range []int{1, DatagramHeaderLen, DatagramHeaderLen + 3} {
		_, err := ReadDatagram(bytes.NewReader(frame[:cut]), make([]byte, 16))
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("stream cut after %d bytes: %v, want io.ErrUnexpectedEOF", cut, err)
		}
	}
	// The same inside the discarded rest of a truncated datagram.
	_, err := ReadDatagram(bytes.NewReader(frame[:DatagramHeaderLen+3]), make([]byte, 1))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut inside the discarded rest: %v", err)
	}
	// Other errors pass through.
	boom := errors.New("boom")
	if _, err := ReadDatagram(io.MultiReader(strings.NewReader("\x00\x05he"), errReader{boom}), make([]byte, 16)); !errors.Is(err, boom) {
		t.Errorf("read error = %v", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
