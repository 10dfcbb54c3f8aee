package debpkg

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Sentinel errors.
var (
	// ErrFormat: the input is not a well-formed .deb (or ar, or tar member).
	ErrFormat = errors.New("debpkg: malformed package")
	// ErrNotFound: a package, member or file is not where it was looked for.
	ErrNotFound = errors.New("debpkg: not found")
	// ErrChecksum: downloaded bytes do not match the index's SHA256.
	ErrChecksum = errors.New("debpkg: checksum mismatch")
)

const arMagic = "!<arch>\n"

// WalkAr calls fn for every member of the ar archive r, in order, with a
// reader limited to the member's bytes. fn need not consume the reader.
func WalkAr(r io.Reader, fn func(name string, size int64, body io.Reader) error) error {
	br := bufio.NewReader(r)
	magic := make([]byte, len(arMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != arMagic {
		return fmt.Errorf("%w: no ar magic", ErrFormat)
	}
	hdr := make([]byte, 60)
	for {
		if _, err := io.ReadFull(br, hdr); err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("%w: ar header: %v", ErrFormat, err)
		}
		if hdr[58] != '`' || hdr[59] != '\n' {
			return fmt.Errorf("%w: bad ar header terminator", ErrFormat)
		}
		name := strings.TrimRight(string(hdr[0:16]), " ")
		name = strings.TrimSuffix(name, "/") // GNU ar ends names with '/'
		size, err := strconv.ParseInt(strings.TrimSpace(string(hdr[48:58])), 10, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("%w: ar member %q size %q", ErrFormat, name, hdr[48:58])
		}
		body := io.LimitReader(br, size)
		if err := fn(name, size, body); err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, body); err != nil {
			return fmt.Errorf("%w: ar member %q: %v", ErrFormat, name, err)
		}
		if size%2 == 1 { // members are 2-byte aligned
			if _, err := br.Discard(1); err != nil && err != io.EOF {
				return fmt.Errorf("%w: ar padding: %v", ErrFormat, err)
			}
		}
	}
}

// Decompress wraps r according to the suffix of a member name (".gz", ".xz",
// ".zst", or none). The returned close func releases decoder resources.
func Decompress(name string, r io.Reader) (io.Reader, func(), error) {
	switch {
	case strings.HasSuffix(name, ".gz"):
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %v", ErrFormat, name, err)
		}
		return z, func() { z.Close() }, nil
	case strings.HasSuffix(name, ".xz"):
		z, err := xz.NewReader(bufio.NewReaderSize(r, 1<<16))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %v", ErrFormat, name, err)
		}
		return z, func() {}, nil
	case strings.HasSuffix(name, ".zst"):
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %v", ErrFormat, name, err)
		}
		return z, z.Close, nil
	case strings.HasSuffix(name, ".tar"):
		return r, func() {}, nil
	}
	return nil, nil, fmt.Errorf("%w: unknown compression of member %q", ErrFormat, name)
}

// walkTarMember walks the tar member of deb whose name starts with prefix
// ("data.tar", "control.tar").
func walkTarMember(deb io.Reader, prefix string, fn func(h *tar.Header, body io.Reader) error) error {
	found := false
	err := WalkAr(deb, func(name string, _ int64, body io.Reader) error {
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		found = true
		r, done, err := Decompress(name, body)
		if err != nil {
			return err
		}
		defer done()
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%w: %s: %v", ErrFormat, name, err)
			}
			h.Name = CleanName(h.Name)
			if err := fn(h, tr); err != nil {
				return err
			}
		}
	})
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: no %s member", ErrNotFound, prefix)
	}
	return nil
}

// CleanName turns a tar name of a .deb ("./usr/bin/x", "./lib/") into a
// relative path without leading "./" or trailing "/" ("" for the root).
func CleanName(n string) string {
	n = strings.TrimPrefix(n, "./")
	n = strings.TrimPrefix(n, "/")
	return strings.TrimSuffix(n, "/")
}

// WalkData calls fn for every entry of the package's data.tar, names cleaned
// with CleanName.
func WalkData(deb io.Reader, fn func(h *tar.Header, body io.Reader) error) error {
	return walkTarMember(deb, "data.tar", fn)
}

// ReadFiles returns the contents of the regular files of deb's data.tar for
// which want returns true, keyed by cleaned name, and the symlinks among
// the selected names (name → target).
func ReadFiles(deb io.Reader, want func(name string) bool) (files map[string][]byte, links map[string]string, err error) {
	files, links = map[string][]byte{}, map[string]string{}
	err = WalkData(deb, func(h *tar.Header, body io.Reader) error {
		if !want(h.Name) {
			return nil
		}
		switch h.Typeflag {
		case tar.TypeReg:
			b, err := io.ReadAll(body)
			if err != nil {
				return fmt.Errorf("%w: read %s: %v", ErrFormat, h.Name, err)
			}
			files[h.Name] = b
		case tar.TypeSymlink:
			links[h.Name] = h.Linkname
		}
		return nil
	})
	return files, links, err
}

// Control returns the fields of the package's control file.
func Control(deb io.Reader) (Paragraph, error) {
	var p Paragraph
	err := walkTarMember(deb, "control.tar", func(h *tar.Header, body io.Reader) error {
		if h.Name != "control" {
			return nil
		}
		ps, err := ParseParagraphs(body)
		if err != nil {
			return err
		}
		if len(ps) > 0 {
			p = ps[0]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("%w: control file", ErrNotFound)
	}
	return p, nil
}

// Paragraph is one stanza of a Debian control file (Packages index, control):
// field name → value, continuation lines joined with "\n".
type Paragraph map[string]string

// ParseParagraphs parses RFC 822-style stanzas separated by blank lines.
func ParseParagraphs(r io.Reader) ([]Paragraph, error) {
	var out []Paragraph
	cur := Paragraph{}
	last := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			if len(cur) > 0 {
				out = append(out, cur)
				cur, last = Paragraph{}, ""
			}
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("%w: continuation line without field: %q", ErrFormat, line)
			}
			cur[last] += "\n" + strings.TrimSpace(line)
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf("%w: control line %q", ErrFormat, line)
			}
			last = strings.TrimSpace(k)
			cur[last] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: control: %v", ErrFormat, err)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out, nil
}

// DependsNames returns the package names of a Depends-style field, ignoring
// version constraints, architecture qualifiers and alternatives after the
// first ("a (>= 1), b | c" → [a b]).
func DependsNames(field string) []string {
	var out []string
	for _, d := range strings.Split(field, ",") {
		d, _, _ = strings.Cut(d, "|")
		d, _, _ = strings.Cut(d, "(")
		d, _, _ = strings.Cut(d, "[")
		d, _, _ = strings.Cut(strings.TrimSpace(d), ":")
		if d = strings.TrimSpace(d); d != "" {
			out = append(out, d)
		}
	}
	return out
}

// BuildDeb writes a minimal .deb (ar with debian-binary, control.tar.gz and
// data.tar.gz) from control fields and data entries. It exists for tests of
// this and other packages; the files need no real package behind them.
func BuildDeb(control string, data []TarEntry) ([]byte, error) {
	ctl, err := tarGz([]TarEntry{{Name: "./control", Mode: 0o644, Body: []byte(control)}})
	if err != nil {
		return nil, err
	}
	dat, err := tarGz(data)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(arMagic)
	for _, m := range []struct {
		name string
		body []byte
	}{{"debian-binary", []byte("2.0\n")}, {"control.tar.gz", ctl}, {"data.tar.gz", dat}} {
		fmt.Fprintf(&b, "%-16s%-12d%-6d%-6d%-8o%-10d`\n", m.name, 0, 0, 0, 0o100644, len(m.body))
		b.Write(m.body)
		if len(m.body)%2 == 1 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes(), nil
}

// TarEntry is one entry for BuildDeb: a regular file, or a directory when
// Name ends in "/", or a symlink when Link is set.
type TarEntry struct {
	Name string
	Mode int64
	Body []byte
	Link string
}

func tarGz(entries []TarEntry) ([]byte, error) {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Mode: e.Mode, Typeflag: tar.TypeReg, Size: int64(len(e.Body))}
		switch {
		case e.Link != "":
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, e.Link, 0
		case strings.HasSuffix(e.Name, "/"):
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("tar %s: %w", e.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.Body); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
