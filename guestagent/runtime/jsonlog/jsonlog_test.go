package jsonlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock hands out strictly increasing times, one second apart.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

var t0 = time.Date(2026, 11, 30, 10, 0, 0, 123456789, time.UTC)

func newWriter(t *testing.T) (*Writer, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctr-json.log")
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	c := &fakeClock{t: t0}
	w.now = c.now
	t.Cleanup(func() { w.Close() })
	return w, path
}

func readAll(t *testing.T, path string, opts ReadOptions) []Entry {
	t.Helper()
	var out []Entry
	err := Read(context.Background(), path, opts, func(e Entry) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return out
}

func lines(es []Entry) []string {
	var s []string
	for _, e := range es {
		s = append(s, e.Stream+":"+string(e.Line))
	}
	return s
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestRoundTripFormat(t *testing.T) {
	w, path := newWriter(t)
	out, errw := w.Stream("stdout"), w.Stream("stderr")
	fmt.Fprint(out, "hello\nwor")
	fmt.Fprint(errw, "oops\n")
	fmt.Fprint(out, "ld\n<&>\n\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	first := strings.SplitN(string(raw), "\n", 2)[0]
	if want := `{"log":"hello\n","stream":"stdout","time":"2026-11-30T10:00:01.123456789Z"}`; first != want {
		t.Fatalf("first line %s\nwant       %s", first, want)
	}
	if !strings.Contains(string(raw), `"log":"\u003c\u0026\u003e\n"`) {
		t.Fatalf("html not escaped as Docker does: %s", raw)
	}
	es := readAll(t, path, ReadOptions{Tail: -1})
	equal(t, lines(es), []string{"stdout:hello\n", "stderr:oops\n", "stdout:world\n", "stdout:<&>\n", "stdout:\n"})
	// "world" takes the time its first byte arrived.
	if !es[2].Time.Equal(t0.Add(time.Second)) || !es[1].Time.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("times %v %v", es[1].Time, es[2].Time)
	}
	if _, err := out.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestAppendToExisting(t *testing.T) {
	w, path := newWriter(t)
	fmt.Fprint(w.Stream("stdout"), "one\n")
	w.Close()
	w2, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w2.Stream("stdout"), "two\n")
	w2.Close()
	equal(t, lines(readAll(t, path, ReadOptions{Tail: -1})), []string{"stdout:one\n", "stdout:two\n"})
}

func TestSplitLongLines(t *testing.T) {
	w, path := newWriter(t)
	s := w.Stream("stdout")
	long := bytes.Repeat([]byte("a"), 2*MaxLineSize+100)
	exact := bytes.Repeat([]byte("b"), MaxLineSize)
	// Written in odd pieces to exercise buffering across writes.
	data := append(append(append(append([]byte{}, long...), '\n'), exact...), '\n')
	data = append(data, "tail"...)
	for len(data) > 0 {
		n := min(len(data), 7001)
		if _, err := s.Write(data[:n]); err != nil {
			t.Fatal(err)
		}
		data = data[n:]
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	es := readAll(t, path, ReadOptions{Tail: -1})
	want := []int{MaxLineSize, MaxLineSize, 101, MaxLineSize + 1, 4}
	if len(es) != len(want) {
		t.Fatalf("%d entries, want %d", len(es), len(want))
	}
	for i, e := range es {
		if len(e.Line) != want[i] {
			t.Errorf("entry %d: %d bytes, want %d", i, len(e.Line), want[i])
		}
		hasNL := bytes.HasSuffix(e.Line, []byte("\n"))
		if wantNL := i == 2 || i == 3; hasNL != wantNL {
			t.Errorf("entry %d: newline %v, want %v", i, hasNL, wantNL)
		}
	}
	var joined []byte
	for _, e := range es[:3] {
		joined = append(joined, e.Line...)
	}
	if !bytes.Equal(joined, append(long, '\n')) {
		t.Error("split parts do not rejoin to the line")
	}
}

func TestPartialLineOnCloseAndFlush(t *testing.T) {
	w, path := newWriter(t)
	s := w.Stream("stderr")
	fmt.Fprint(s, "no newline")
	if got := readAll(t, path, ReadOptions{Tail: -1}); len(got) != 0 {
		t.Fatalf("partial line visible before flush: %q", lines(got))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(s, "more")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	equal(t, lines(readAll(t, path, ReadOptions{Tail: -1})), []string{"stderr:no newline", "stderr:more"})
}

// writeN writes n numbered lines "line i\n" to stdout.
func writeN(t *testing.T, w *Writer, from, n int) {
	t.Helper()
	s := w.Stream("stdout")
	for i := from; i < from+n; i++ {
		if _, err := fmt.Fprintf(s, "line %d\n", i); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTail(t *testing.T) {
	old := tailBlockSize
	tailBlockSize = 100 // far smaller than the file: many blocks
	t.Cleanup(func() { tailBlockSize = old })

	w, path := newWriter(t)
	writeN(t, w, 0, 500)
	w.Close()
	if fi, _ := os.Stat(path); fi.Size() < int64(10*tailBlockSize) {
		t.Fatalf("file too small for the test: %d", fi.Size())
	}
	for _, n := range []int{0, 1, 2, 3, 7, 137, 499, 500, 501, 10000} {
		es := readAll(t, path, ReadOptions{Tail: n})
		want := min(n, 500)
		if len(es) != want {
			t.Fatalf("tail %d: %d entries", n, len(es))
		}
		if want > 0 {
			if got, w := string(es[0].Line), fmt.Sprintf("line %d\n", 500-want); got != w {
				t.Fatalf("tail %d: first %q, want %q", n, got, w)
			}
			if string(es[len(es)-1].Line) != "line 499\n" {
				t.Fatalf("tail %d: last %q", n, es[len(es)-1].Line)
			}
		}
	}
	if es := readAll(t, path, ReadOptions{Tail: -1}); len(es) != 500 {
		t.Fatalf("all: %d", len(es))
	}
}

func TestTailWithTornLastLine(t *testing.T) {
	old := tailBlockSize
	tailBlockSize = 64
	t.Cleanup(func() { tailBlockSize = old })
	w, path := newWriter(t)
	writeN(t, w, 0, 10)
	w.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"log":"half`)
	f.Close()
	es := readAll(t, path, ReadOptions{Tail: 2})
	equal(t, lines(es), []string{"stdout:line 8\n", "stdout:line 9\n"})
	if es := readAll(t, path, ReadOptions{Tail: -1}); len(es) != 10 {
		t.Fatalf("torn line delivered: %d entries", len(es))
	}
}

func TestSinceUntil(t *testing.T) {
	w, path := newWriter(t)
	writeN(t, w, 0, 10) // times t0+1s … t0+10s
	w.Close()
	at := func(i int) time.Time { return t0.Add(time.Duration(i+1) * time.Second) }
	tests := []struct {
		name  string
		opts  ReadOptions
		first int
		n     int
	}{
		{"since inclusive", ReadOptions{Tail: -1, Since: at(3)}, 3, 7},
		{"until inclusive", ReadOptions{Tail: -1, Until: at(4)}, 0, 5},
		{"window", ReadOptions{Tail: -1, Since: at(2), Until: at(5).Add(-time.Nanosecond)}, 2, 3},
		{"tail then since", ReadOptions{Tail: 4, Since: at(8)}, 8, 2},
		{"since after end", ReadOptions{Tail: -1, Since: at(20)}, 0, 0},
		{"until before start", ReadOptions{Tail: -1, Until: t0}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := readAll(t, path, tt.opts)
			if len(es) != tt.n {
				t.Fatalf("%d entries, want %d: %q", len(es), tt.n, lines(es))
			}
			if tt.n > 0 && string(es[0].Line) != fmt.Sprintf("line %d\n", tt.first) {
				t.Fatalf("first %q", es[0].Line)
			}
		})
	}
}

func TestCallbackError(t *testing.T) {
	w, path := newWriter(t)
	writeN(t, w, 0, 5)
	w.Close()
	boom := errors.New("boom")
	calls := 0
	err := Read(context.Background(), path, ReadOptions{Tail: -1}, func(Entry) error {
		calls++
		if calls == 2 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || calls != 2 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	if err := Read(context.Background(), filepath.Join(t.TempDir(), "nope"), ReadOptions{}, nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestCorruptLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	good := func(s string) string {
		b, _ := json.Marshal(record{Log: s, Stream: "stdout", Time: t0})
		return string(b) + "\n"
	}
	content := good("a\n") + "not json\n" + `{"log":"trunc` + good("b\n") + "\n" + good("c\n")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	var got []Entry
	err := Read(context.Background(), path, ReadOptions{Tail: -1}, func(e Entry) error {
		got = append(got, e)
		return nil
	})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "2 corrupt") {
		t.Fatalf("err = %v, want ErrCorrupt counting 2", err)
	}
	equal(t, lines(got), []string{"stdout:a\n", "stdout:c\n"})

	// A huge run without newline is dropped, the next lines survive.
	content = strings.Repeat("x", maxPending+10) + "\n" + good("d\n")
	os.WriteFile(path, []byte(content), 0o600)
	got = nil
	err = Read(context.Background(), path, ReadOptions{Tail: -1}, func(e Entry) error {
		got = append(got, e)
		return nil
	})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v", err)
	}
	equal(t, lines(got), []string{"stdout:d\n"})
}

// follower runs a following Read in the background, sending entries on a channel.
func follower(ctx context.Context, path string, opts ReadOptions) (<-chan Entry, <-chan error) {
	entries := make(chan Entry, 1000)
	errc := make(chan error, 1)
	go func() {
		errc <- Read(ctx, path, opts, func(e Entry) error {
			entries <- e
			return nil
		})
	}()
	return entries, errc
}

func expectEntry(t *testing.T, entries <-chan Entry, want string) {
	t.Helper()
	select {
	case e := <-entries:
		if string(e.Line) != want {
			t.Fatalf("got %q, want %q", e.Line, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %q", want)
	}
}

func TestFollowConcurrentWriterThenDone(t *testing.T) {
	w, path := newWriter(t)
	writeN(t, w, 0, 3)
	done := make(chan struct{})
	entries, errc := follower(context.Background(), path, ReadOptions{Tail: 1, Follow: true, Done: done})
	expectEntry(t, entries, "line 2\n")

	// Interleaved writers on two streams.
	var wg sync.WaitGroup
	for _, st := range []string{"stdout", "stderr"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := w.Stream(st)
			for i := range 200 {
				fmt.Fprintf(s, "%s %d\n", st, i)
			}
		}()
	}
	// A line written in two halves is delivered once, whole.
	half := w.Stream("stdout")
	fmt.Fprint(half, "first half, ")
	wg.Wait()
	fmt.Fprint(half, "second half\n")
	w.Close()
	close(done)

	// The entries channel holds more than the test writes, so Read never
	// blocks on it: wait for the end, then check what arrived.
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end after Done")
	}
	next := map[string]int{}
	sawHalves := false
	for len(entries) > 0 {
		e := <-entries
		if l := string(e.Line); l == "first half, second half\n" {
			sawHalves = true
			continue
		}
		var st string
		var i int
		if _, err := fmt.Sscanf(string(e.Line), "%s %d\n", &st, &i); err != nil || st != e.Stream {
			t.Fatalf("unexpected entry %q on %s", e.Line, e.Stream)
		}
		if i != next[st] {
			t.Fatalf("%s: got %d, want %d (order lost)", st, i, next[st])
		}
		next[st]++
	}
	if next["stdout"] != 200 || next["stderr"] != 200 || !sawHalves {
		t.Fatalf("missing entries: %v halves=%v", next, sawHalves)
	}
}

func TestFollowTornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, _ := json.Marshal(record{Log: "whole\n", Stream: "stdout", Time: t0})
	line := append(b, '\n')
	f.Write(line[:10])
	done := make(chan struct{})
	entries, errc := follower(context.Background(), path, ReadOptions{Tail: -1, Follow: true, Done: done})
	f.Write(line[10:20])
	select {
	case e := <-entries:
		t.Fatalf("half line delivered: %q", e.Line)
	case <-time.After(150 * time.Millisecond): // a wrong delivery would have happened by now
	}
	f.Write(line[20:])
	expectEntry(t, entries, "whole\n")
	close(done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestFollowContextCancel(t *testing.T) {
	w, path := newWriter(t)
	writeN(t, w, 0, 1)
	ctx, cancel := context.WithCancel(context.Background())
	entries, errc := follower(ctx, path, ReadOptions{Tail: -1, Follow: true}) // no Done: only ctx ends it
	expectEntry(t, entries, "line 0\n")
	writeN(t, w, 1, 1)
	expectEntry(t, entries, "line 1\n")
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read did not return after cancel")
	}
}

func TestFollowUntilPassed(t *testing.T) {
	_, path := newWriter(t)
	entries, errc := follower(context.Background(), path, ReadOptions{Tail: -1, Follow: true, Until: time.Now().Add(50 * time.Millisecond)})
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end when Until passed")
	}
	if len(entries) != 0 {
		t.Fatal("unexpected entries")
	}
}

func TestFollowTailZero(t *testing.T) {
	w, path := newWriter(t)
	writeN(t, w, 0, 5)
	done := make(chan struct{})
	positioned := make(chan struct{})
	testPositioned = func() { close(positioned) }
	t.Cleanup(func() { testPositioned = nil })
	entries, errc := follower(context.Background(), path, ReadOptions{Tail: 0, Follow: true, Done: done})
	<-positioned // only then is "line 5" surely new
	writeN(t, w, 5, 1)
	expectEntry(t, entries, "line 5\n")
	select {
	case err := <-errc:
		t.Fatalf("Read returned before Done: %v", err)
	default:
	}
	close(done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatal("old entries delivered with tail 0")
	}
}

func TestConcurrentWritersWholeLines(t *testing.T) {
	w, path := newWriter(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := w.Stream("stdout")
			for i := range 100 {
				fmt.Fprintf(s, "g%d-%d-%s\n", g, i, strings.Repeat("z", 300))
			}
		}()
	}
	wg.Wait()
	w.Close()
	es := readAll(t, path, ReadOptions{Tail: -1})
	if len(es) != 800 {
		t.Fatalf("%d entries", len(es))
	}
	for _, e := range es {
		if !bytes.HasSuffix(e.Line, []byte(strings.Repeat("z", 300)+"\n")) {
			t.Fatalf("interleaved entry %q", e.Line)
		}
	}
}
