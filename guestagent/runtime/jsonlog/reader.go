package jsonlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// tailBlockSize is how much Read reads at a time when it looks for the start
// of the last N entries from the end of the file.
var tailBlockSize = 64 * 1024

// readChunkSize is the size of forward reads.
const readChunkSize = 64 * 1024

// maxPending bounds a line being assembled: an entry holds at most
// MaxLineSize bytes of text, at most 6× that escaped, plus the stream and
// time. A longer run without a newline is garbage and is skipped.
const maxPending = 8*MaxLineSize + 4096

// testPositioned, when set by a test, is called once Read has found where
// to start.
var testPositioned func()

// errStop ends a read without an error (an entry after Until).
var errStop = errors.New("stop")

// tailOffset returns the offset at which the last n complete lines of f
// start, reading backwards from end in blocks. A trailing partial line (no
// newline yet) is not counted.
func tailOffset(f io.ReaderAt, size int64, n int) (int64, error) {
	if n == 0 {
		return size, nil // nothing old; a following read starts at the end
	}
	buf := make([]byte, tailBlockSize)
	end := size         // bytes [0,end) are examined
	lastNL := int64(-1) // offset of the last newline in the file
	count := 0
	for end > 0 {
		start := max(end-int64(len(buf)), 0)
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != '\n' {
				continue
			}
			off := start + int64(i)
			if lastNL < 0 {
				lastNL = off // ends the last complete line
				continue
			}
			count++
			if count == n {
				return off + 1, nil
			}
		}
		end = start
	}
	return 0, nil
}

// reader reads complete lines from f, keeping a torn last line for later.
type reader struct {
	ctx      context.Context
	f        *os.File
	pending  []byte
	chunk    []byte
	skip     bool // discarding an overlong line up to its newline
	corrupt  int
	firstBad error
	opts     ReadOptions
	fn       func(Entry) error
}

// drain delivers every complete line currently in the file.
func (r *reader) drain() error {
	for {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		n, err := r.f.Read(r.chunk)
		if n > 0 {
			if err := r.consume(r.chunk[:n]); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read log %s: %w", r.f.Name(), err)
		}
	}
}

func (r *reader) consume(b []byte) error {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if !r.skip {
				r.pending = append(r.pending, b...)
				if len(r.pending) > maxPending {
					r.pending = r.pending[:0]
					r.skip = true
					r.badLine(fmt.Errorf("line longer than %d bytes", maxPending))
				}
			}
			return nil
		}
		line := b[:i]
		b = b[i+1:]
		if r.skip {
			r.skip = false
			continue
		}
		if len(r.pending) > 0 {
			r.pending = append(r.pending, line...)
			line = r.pending
		}
		err := r.line(line)
		r.pending = r.pending[:0]
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) badLine(err error) {
	r.corrupt++
	if r.firstBad == nil {
		r.firstBad = err
	}
}

func (r *reader) line(b []byte) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		r.badLine(err)
		return nil
	}
	if !r.opts.Since.IsZero() && rec.Time.Before(r.opts.Since) {
		return nil
	}
	if !r.opts.Until.IsZero() && rec.Time.After(r.opts.Until) {
		return errStop
	}
	return r.fn(Entry{Stream: rec.Stream, Time: rec.Time, Line: []byte(rec.Log)})
}

// result turns the end of a read into Read's answer.
func (r *reader) result(err error) error {
	if errors.Is(err, errStop) {
		err = nil
	}
	if err == nil && r.corrupt > 0 {
		return fmt.Errorf("log %s: skipped %d corrupt line(s), first: %v: %w", r.f.Name(), r.corrupt, r.firstBad, ErrCorrupt)
	}
	return err
}

func read(ctx context.Context, path string, opts ReadOptions, fn func(Entry) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer f.Close()

	// Watch before the first read so that no append is missed.
	var wake <-chan struct{}
	poll := pollInterval
	if opts.Follow {
		n, err := newNotifier(path)
		if err == nil {
			defer n.close()
			wake, poll = n.events, n.safetyPoll
		}
	}

	if opts.Tail >= 0 {
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("stat log: %w", err)
		}
		off, err := tailOffset(f, fi.Size(), opts.Tail)
		if err != nil {
			return fmt.Errorf("tail log %s: %w", path, err)
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return fmt.Errorf("seek log %s: %w", path, err)
		}
	}

	if testPositioned != nil {
		testPositioned()
	}
	r := &reader{ctx: ctx, f: f, chunk: make([]byte, readChunkSize), opts: opts, fn: fn}
	if !opts.Follow {
		return r.result(r.drain())
	}

	var until <-chan time.Time
	if !opts.Until.IsZero() {
		t := time.NewTimer(time.Until(opts.Until))
		defer t.Stop()
		until = t.C
	}
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	finished := false
	for {
		// Sample Done before draining: whatever was written before Done
		// was closed is then read by this drain.
		if !finished {
			select {
			case <-opts.Done:
				finished = true
			default:
			}
		}
		if err := r.drain(); err != nil {
			return r.result(err)
		}
		if finished {
			return r.result(nil)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-opts.Done:
		case <-until:
			until = nil
			finished = true
		case <-wake:
		case <-ticker.C:
		}
	}
}
