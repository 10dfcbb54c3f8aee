package jsonlog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// record is an entry as stored on disk.
type record struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// encoder turns records into lines, reusing its buffer.
type encoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// line returns the JSON line (with its newline) for one entry; the slice is
// valid until the next call.
func (e *encoder) line(stream string, t time.Time, text []byte) ([]byte, error) {
	if e.enc == nil {
		e.enc = json.NewEncoder(&e.buf)
	}
	e.buf.Reset()
	// json.Encoder escapes <, > and & and turns invalid UTF-8 into U+FFFD,
	// as Docker's encoder does; Encode ends the object with a newline.
	if err := e.enc.Encode(record{Log: string(text), Stream: stream, Time: t.UTC()}); err != nil {
		return nil, err
	}
	return e.buf.Bytes(), nil
}

type streamWriter struct {
	w      *Writer
	stream string
	buf    []byte    // partial line (guarded by w.mu)
	ts     time.Time // when buf's first byte arrived
	closed bool
}

// emitLocked writes one entry with a single write(2) of the whole line.
func (w *Writer) emitLocked(stream string, t time.Time, text []byte) error {
	line, err := w.enc.line(stream, t, text)
	if err != nil {
		return fmt.Errorf("encode log entry: %w", err)
	}
	if _, err := w.f.Write(line); err != nil {
		return fmt.Errorf("write log %s: %w", w.path, err)
	}
	return nil
}

func (w *Writer) flushLocked() error {
	var first error
	for _, s := range w.streams {
		if err := s.flushLocked(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (s *streamWriter) flushLocked() error {
	if len(s.buf) == 0 {
		return nil
	}
	err := s.w.emitLocked(s.stream, s.ts, s.buf)
	s.buf = s.buf[:0]
	return err
}

// Write splits p into lines: each complete line becomes an entry, text over
// MaxLineSize is cut into entries without a newline, and a partial last line
// waits for the rest.
func (s *streamWriter) Write(p []byte) (int, error) {
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || s.closed {
		return 0, fmt.Errorf("write %s log %s: %w", s.stream, w.path, ErrClosed)
	}
	n := len(p)
	now := w.now()
	for len(p) > 0 {
		if len(s.buf) == 0 {
			s.ts = now
		}
		room := MaxLineSize - len(s.buf)
		i := bytes.IndexByte(p, '\n')
		if i >= 0 && i <= room {
			var err error
			if len(s.buf) == 0 {
				err = w.emitLocked(s.stream, s.ts, p[:i+1])
			} else {
				s.buf = append(s.buf, p[:i+1]...)
				err = w.emitLocked(s.stream, s.ts, s.buf)
				s.buf = s.buf[:0]
			}
			if err != nil {
				return n - len(p), err
			}
			p = p[i+1:]
			continue
		}
		if len(p) < room {
			s.buf = append(s.buf, p...)
			break
		}
		// MaxLineSize bytes without a newline: an entry of its own.
		s.buf = append(s.buf, p[:room]...)
		p = p[room:]
		if err := s.flushLocked(); err != nil {
			return n - len(p), err
		}
	}
	return n, nil
}

// Close flushes the stream's partial line; later writes fail.
func (s *streamWriter) Close() error {
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if s.closed || w.closed {
		s.closed = true
		return nil
	}
	s.closed = true
	return s.flushLocked()
}
