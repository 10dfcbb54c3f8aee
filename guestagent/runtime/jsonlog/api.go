// Package jsonlog writes and reads container logs in Docker's json-file
// format: one JSON object per line, {"log":"…","stream":"stdout|stderr",
// "time":"RFC3339Nano"}, with reading by tail, since/until and follow.
//
// Corrupt lines (not valid JSON) are skipped by Read, which goes on with the
// next line and, when the log ends, returns an error wrapping ErrCorrupt that
// counts them. Docker stops at the first corrupt line instead; berth delivers
// every readable entry and still reports the damage.
//
// Following waits for appends with inotify on Linux (falling back to polling
// every 100 ms if inotify is unavailable, with a 1 s safety poll otherwise)
// and by polling every 100 ms elsewhere.
package jsonlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Sentinel errors.
var (
	// ErrCorrupt reports log lines that could not be decoded (and were skipped).
	ErrCorrupt = errors.New("jsonlog: corrupt log line")
	// ErrClosed reports a write to a closed Writer or stream.
	ErrClosed = errors.New("jsonlog: writer closed")
)

// MaxLineSize is the most bytes of log text in one entry; longer lines are
// split into several entries, all but the last without a trailing newline
// (Docker's 16 KiB).
const MaxLineSize = 16 * 1024

// Entry is one log record.
type Entry struct {
	Stream string    // "stdout" or "stderr"
	Time   time.Time // when the line was read
	Line   []byte    // the bytes, including the trailing newline if there was one
}

// Writer appends entries to a log file. It is safe for concurrent use.
type Writer struct {
	mu      sync.Mutex
	f       *os.File
	path    string
	streams []*streamWriter
	closed  bool
	now     func() time.Time
	enc     encoder
}

// Create opens (creating or appending to) the log file at path.
func Create(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", path, err)
	}
	return &Writer{f: f, path: path, now: time.Now}, nil
}

// Stream returns an io.Writer for one stream: each written chunk is split
// into lines; a partial last line is buffered until its newline, Flush or
// Close (lines over 16 KiB are split, as Docker does).
//
// Closing the stream flushes its partial line; the Writer stays open.
func (w *Writer) Stream(stream string) io.WriteCloser {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := &streamWriter{w: w, stream: stream}
	w.streams = append(w.streams, s)
	return s
}

// Flush writes out the partial lines of every stream as entries without a
// trailing newline.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("flush log %s: %w", w.path, ErrClosed)
	}
	return w.flushLocked()
}

// Close flushes partial lines, syncs and closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.flushLocked()
	if serr := w.f.Sync(); serr != nil && err == nil {
		err = fmt.Errorf("sync log %s: %w", w.path, serr)
	}
	if cerr := w.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close log %s: %w", w.path, cerr)
	}
	return err
}

// ReadOptions select entries.
type ReadOptions struct {
	Tail   int       // last N entries; < 0 means all
	Since  time.Time // zero: no bound
	Until  time.Time // zero: no bound
	Follow bool      // keep reading appended entries until Done is closed and the file is drained, or ctx ends
	// Done is closed when the writer has finished for good (the container exited); used with Follow.
	Done <-chan struct{}
}

// Read sends the selected entries of the log at path to fn, in order, until
// fn returns an error, the log ends (or, with Follow, Done/ctx), and returns
// the first error other than the end.
//
// Tail counts entries (as Docker does, before the Since filter is applied);
// Since keeps entries at or after it; the first entry after Until ends the
// read, and with Follow so does the clock passing Until. A last line without
// its newline (a write in progress) is never delivered half: Follow waits for
// it, a plain read leaves it out. When ctx ends, Read returns ctx.Err().
func Read(ctx context.Context, path string, opts ReadOptions, fn func(Entry) error) error {
	return read(ctx, path, opts, fn)
}
