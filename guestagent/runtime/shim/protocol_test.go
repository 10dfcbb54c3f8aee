package shim

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	big := bytes.Repeat([]byte("x"), MaxFrame+10)
	frames := []struct {
		typ byte
		p   []byte
	}{{FrameStdout, []byte("hello\n")}, {FrameStderr, nil}, {FrameResize, ResizePayload(24, 80)}, {FrameStdin, big}}
	for _, f := range frames {
		if err := WriteFrame(&buf, f.typ, f.p); err != nil {
			t.Fatal(err)
		}
	}
	read := func() (byte, []byte) {
		t.Helper()
		typ, p, err := ReadFrame(&buf)
		if err != nil {
			t.Fatal(err)
		}
		return typ, p
	}
	if typ, p := read(); typ != FrameStdout || string(p) != "hello\n" {
		t.Fatalf("frame 1 = %d %q", typ, p)
	}
	if typ, p := read(); typ != FrameStderr || len(p) != 0 {
		t.Fatalf("frame 2 = %d %q", typ, p)
	}
	typ, p := read()
	h, w, err := ParseResize(p)
	if typ != FrameResize || err != nil || h != 24 || w != 80 {
		t.Fatalf("resize frame = %d %v %d×%d", typ, err, h, w)
	}
	// A payload over MaxFrame arrives as two frames.
	_, p1 := read()
	_, p2 := read()
	if len(p1) != MaxFrame || len(p2) != 10 {
		t.Fatalf("split frames of %d and %d bytes", len(p1), len(p2))
	}
	if _, _, err := ReadFrame(&buf); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v, want io.EOF", err)
	}
}

func TestFrameErrors(t *testing.T) {
	for name, in := range map[string][]byte{
		"truncated header":  {1, 0, 0},
		"truncated payload": {1, 0, 0, 0, 5, 'a'},
		"unknown type":      {9, 0, 0, 0, 0},
		"too long":          {1, 0xff, 0, 0, 0},
	} {
		if _, _, err := ReadFrame(bytes.NewReader(in)); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: err = %v, want ErrProtocol", name, err)
		}
	}
	if _, _, err := ParseResize([]byte{1, 2, 3}); !errors.Is(err, ErrProtocol) {
		t.Errorf("short resize: %v", err)
	}
}

func TestLineRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	req := Request{Op: OpExec, Stdin: true, Process: &specs.Process{Args: []string{"sh", "-c", strings.Repeat("a", 10000)}, Terminal: true}}
	if err := WriteLine(&buf, req); err != nil {
		t.Fatal(err)
	}
	if err := WriteFrame(&buf, FrameStdin, []byte("after")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(&buf, 64)
	var got Request
	if err := ReadLine(br, &got); err != nil {
		t.Fatal(err)
	}
	if got.Op != OpExec || !got.Stdin || got.Process == nil || len(got.Process.Args[2]) != 10000 || !got.Process.Terminal {
		t.Fatalf("got %+v", got)
	}
	// The frames that follow the line are read from the same reader.
	if typ, p, err := ReadFrame(br); err != nil || typ != FrameStdin || string(p) != "after" {
		t.Fatalf("frame after line: %d %q %v", typ, p, err)
	}
	if err := ReadLine(bufio.NewReader(strings.NewReader("{not json\n")), &got); !errors.Is(err, ErrProtocol) {
		t.Fatalf("bad line: %v", err)
	}
	if err := ReadLine(bufio.NewReader(strings.NewReader(`{"op":"st`)), &got); !errors.Is(err, ErrProtocol) {
		t.Fatalf("truncated line: %v", err)
	}
}

func TestExitCode(t *testing.T) {
	for _, c := range []struct {
		exited   bool
		status   int
		signaled bool
		sig      int
		want     int
	}{{true, 0, false, 0, 0}, {true, 3, false, 0, 3}, {false, 0, true, 9, 137}, {false, 0, true, 15, 143}, {false, 0, false, 0, 255}} {
		if got := ExitCode(c.exited, c.status, c.signaled, c.sig); got != c.want {
			t.Errorf("ExitCode(%v) = %d, want %d", c, got, c.want)
		}
	}
}

func TestExitFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadExit(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing exit.json: %v", err)
	}
	want := Exit{ExitCode: 137, Signal: 9, OOMKilled: true, FinishedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}
	if err := WriteJSONAtomic(filepath.Join(dir, ExitFile), want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadExit(dir)
	if err != nil || *got != want {
		t.Fatalf("ReadExit = %+v, %v; want %+v", got, err, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}
