package initramfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"
)

// Sentinel errors.
var (
	// ErrInvalid: an entry or an option is unusable.
	ErrInvalid = errors.New("initramfs: invalid")
)

// MTime is the modification time of every entry (2024-01-01T00:00:00Z).
const MTime = 1704067200

// Compression of an archive.
type Compression string

// Supported compressions; the Debian 12 kernels have CONFIG_RD_ZSTD and
// CONFIG_RD_GZIP.
const (
	None Compression = "none"
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
)

// Entry is one file of an archive.
type Entry struct {
	Path   string      // absolute or relative; stored relative ("bin/sh")
	Mode   fs.FileMode // permission bits plus type (fs.ModeDir, fs.ModeSymlink, fs.ModeDevice|fs.ModeCharDevice); 0 type = regular
	Data   []byte      // regular file contents
	Link   string      // symlink target
	UID    uint32
	GID    uint32
	Rmajor uint32 // device numbers of a device node
	Rminor uint32
}

// Archive is a set of entries keyed by path; adding a path twice replaces it.
type Archive struct {
	entries map[string]Entry
}

// New returns an empty archive.
func New() *Archive { return &Archive{entries: map[string]Entry{}} }

func clean(p string) string {
	p = path.Clean("/" + p)
	return strings.TrimPrefix(p, "/")
}

// Add puts e into the archive.
func (a *Archive) Add(e Entry) error {
	p := clean(e.Path)
	if p == "" || p == "." {
		return fmt.Errorf("%w: entry path %q", ErrInvalid, e.Path)
	}
	e.Path = p
	a.entries[p] = e
	return nil
}

// File adds a regular file.
func (a *Archive) File(p string, perm fs.FileMode, data []byte) error {
	return a.Add(Entry{Path: p, Mode: perm.Perm() | perm&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky), Data: data})
}

// Dir adds a directory.
func (a *Archive) Dir(p string, perm fs.FileMode) error {
	return a.Add(Entry{Path: p, Mode: fs.ModeDir | perm&(fs.ModePerm|fs.ModeSticky)})
}

// Symlink adds a symbolic link.
func (a *Archive) Symlink(p, target string) error {
	return a.Add(Entry{Path: p, Mode: fs.ModeSymlink | 0o777, Link: target})
}

// CharDev adds a character device node.
func (a *Archive) CharDev(p string, perm fs.FileMode, major, minor uint32) error {
	return a.Add(Entry{Path: p, Mode: fs.ModeDevice | fs.ModeCharDevice | perm.Perm(), Rmajor: major, Rminor: minor})
}

// Len returns the number of entries (parents not yet added excluded).
func (a *Archive) Len() int { return len(a.entries) }

// Paths returns the sorted entry paths.
func (a *Archive) Paths() []string {
	ps := make([]string, 0, len(a.entries))
	for p := range a.entries {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// records returns the archive as cpio records, parents added, sorted.
func (a *Archive) records() ([]cpio.Record, error) {
	all := map[string]Entry{}
	for p, e := range a.entries {
		all[p] = e
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := a.entries[d]; !ok {
				all[d] = Entry{Path: d, Mode: fs.ModeDir | 0o755}
			}
		}
	}
	paths := make([]string, 0, len(all))
	for p, e := range all {
		if _, isDir := a.entries[p]; isDir && e.Mode&fs.ModeDir == 0 {
			for q := range all {
				if strings.HasPrefix(q, p+"/") {
					return nil, fmt.Errorf("%w: %s is not a directory but has %s below it", ErrInvalid, p, q)
				}
			}
		}
		paths = append(paths, p)
	}
	sort.Strings(paths)
	recs := make([]cpio.Record, 0, len(paths))
	for i, p := range paths {
		e := all[p]
		info := cpio.Info{
			Ino: uint64(i + 1), Name: p, MTime: MTime, UID: uint64(e.UID), GID: uint64(e.GID), NLink: 1,
			Rmajor: uint64(e.Rmajor), Rminor: uint64(e.Rminor),
		}
		perm := uint64(e.Mode.Perm())
		if e.Mode&fs.ModeSetuid != 0 {
			perm |= cpio.S_ISUID
		}
		if e.Mode&fs.ModeSetgid != 0 {
			perm |= cpio.S_ISGID
		}
		if e.Mode&fs.ModeSticky != 0 {
			perm |= cpio.S_ISVTX
		}
		var data []byte
		switch {
		case e.Mode&fs.ModeDir != 0:
			info.Mode, info.NLink = cpio.S_IFDIR|perm, 2
		case e.Mode&fs.ModeSymlink != 0:
			if e.Link == "" {
				return nil, fmt.Errorf("%w: symlink %s without target", ErrInvalid, p)
			}
			info.Mode, data = cpio.S_IFLNK|perm, []byte(e.Link)
		case e.Mode&fs.ModeCharDevice != 0:
			info.Mode = cpio.S_IFCHR | perm
		case e.Mode&fs.ModeDevice != 0:
			info.Mode = cpio.S_IFBLK | perm
		case e.Mode&fs.ModeType == 0:
			info.Mode, data = cpio.S_IFREG|perm, e.Data
		default:
			return nil, fmt.Errorf("%w: %s has unsupported type %v", ErrInvalid, p, e.Mode.Type())
		}
		recs = append(recs, cpio.StaticRecord(data, info))
	}
	return recs, nil
}

// WriteCPIO writes the uncompressed newc archive, trailer included.
func (a *Archive) WriteCPIO(w io.Writer) error {
	recs, err := a.records()
	if err != nil {
		return err
	}
	rw := cpio.Newc.Writer(w)
	for _, r := range recs {
		if err := rw.WriteRecord(r); err != nil {
			return fmt.Errorf("cpio %s: %w", r.Name, err)
		}
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return fmt.Errorf("cpio trailer: %w", err)
	}
	return nil
}

// Write writes the archive compressed with c.
func (a *Archive) Write(w io.Writer, c Compression) error {
	zw, err := Compressor(w, c)
	if err != nil {
		return err
	}
	if err := a.WriteCPIO(zw); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("initramfs %s: %w", c, err)
	}
	return nil
}

// Bytes returns the archive compressed with c.
func (a *Archive) Bytes(c Compression) ([]byte, error) {
	var b bytes.Buffer
	if err := a.Write(&b, c); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// Compressor returns a deterministic compressing writer for c.
func Compressor(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case None, "":
		return nopCloser{w}, nil
	case Gzip:
		zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return zw, nil // header: no name, zero ModTime
	case Zstd:
		zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithWindowSize(1<<22))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zw, nil
	}
	return nil, fmt.Errorf("%w: compression %q", ErrInvalid, c)
}

// Decompressor returns a reader of r's contents whatever its compression
// (sniffed from the magic bytes: gzip, zstd or none). It reads one archive,
// not a concatenation.
func Decompressor(r io.Reader) (io.ReadCloser, error) {
	br := &peekReader{r: r}
	magic, err := br.peek(4)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrInvalid, err)
		}
		z.Multistream(false)
		return z, nil
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		z, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", ErrInvalid, err)
		}
		return z.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

type peekReader struct {
	r   io.Reader
	buf []byte
}

func (p *peekReader) peek(n int) ([]byte, error) {
	for len(p.buf) < n {
		b := make([]byte, n-len(p.buf))
		k, err := p.r.Read(b)
		p.buf = append(p.buf, b[:k]...)
		if err != nil {
			if err == io.EOF && len(p.buf) > 0 {
				return p.buf, nil
			}
			return p.buf, err
		}
	}
	return p.buf, nil
}

func (p *peekReader) Read(b []byte) (int, error) {
	if len(p.buf) > 0 {
		n := copy(b, p.buf)
		p.buf = p.buf[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// ReadEntries decompresses one archive and returns its records' metadata
// and contents (trailer excluded), for tests and for inspection.
func ReadEntries(compressed []byte) ([]Entry, error) {
	zr, err := Decompressor(bytes.NewReader(compressed))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("%w: decompress: %v", ErrInvalid, err)
	}
	recs, err := cpio.ReadAllRecords(cpio.EOFReader{RecordReader: cpio.Newc.Reader(bytes.NewReader(raw))})
	if err != nil {
		return nil, fmt.Errorf("%w: cpio: %v", ErrInvalid, err)
	}
	out := make([]Entry, 0, len(recs))
	for _, r := range recs {
		e := Entry{Path: r.Name, UID: uint32(r.UID), GID: uint32(r.GID), Rmajor: uint32(r.Rmajor), Rminor: uint32(r.Rminor)}
		perm := fs.FileMode(r.Mode & 0o777)
		if r.Mode&cpio.S_ISUID != 0 {
			perm |= fs.ModeSetuid
		}
		if r.Mode&cpio.S_ISGID != 0 {
			perm |= fs.ModeSetgid
		}
		if r.Mode&cpio.S_ISVTX != 0 {
			perm |= fs.ModeSticky
		}
		var body []byte
		if r.FileSize > 0 && r.ReaderAt != nil {
			body = make([]byte, r.FileSize)
			if _, err := r.ReadAt(body, 0); err != nil && err != io.EOF {
				return nil, fmt.Errorf("%w: read %s: %v", ErrInvalid, r.Name, err)
			}
		}
		switch r.Mode & cpio.S_IFMT {
		case cpio.S_IFDIR:
			e.Mode = fs.ModeDir | perm
		case cpio.S_IFLNK:
			e.Mode, e.Link = fs.ModeSymlink|perm, string(body)
		case cpio.S_IFCHR:
			e.Mode = fs.ModeDevice | fs.ModeCharDevice | perm
		case cpio.S_IFBLK:
			e.Mode = fs.ModeDevice | perm
		case cpio.S_IFREG:
			e.Mode, e.Data = perm, body
		default:
			e.Mode = fs.ModeIrregular | perm
		}
		out = append(out, e)
	}
	return out, nil
}

// Concat writes the archives one after the other, each padded with zero
// bytes to a multiple of 4 (the kernel skips zeros between archives and
// needs uncompressed ones 4-byte aligned).
func Concat(w io.Writer, parts ...io.Reader) error {
	var off int64
	for i, p := range parts {
		if pad := (4 - off%4) % 4; pad != 0 {
			if _, err := w.Write(make([]byte, pad)); err != nil {
				return fmt.Errorf("concat: %w", err)
			}
			off += pad
		}
		n, err := io.Copy(w, p)
		if err != nil {
			return fmt.Errorf("concat part %d: %w", i, err)
		}
		off += n
	}
	return nil
}
