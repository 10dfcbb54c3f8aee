package archive

import (
	"archive/tar"
	"bytes"
	"testing"
	"time"
)

// tarEntry is a compact description of one tar entry for tests.
type tarEntry struct {
	name     string
	typ      byte
	body     string
	link     string
	mode     int64
	modeSet  bool // mode is meant literally (also when 0)
	uid, gid int
	major    int64
	minor    int64
	mtime    time.Time
	pax      map[string]string
}

var testTime = time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)

func file(name, body string) tarEntry { return tarEntry{name: name, typ: tar.TypeReg, body: body} }
func dir(name string) tarEntry        { return tarEntry{name: name, typ: tar.TypeDir} }
func symlink(name, target string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeSymlink, link: target}
}
func hardlink(name, target string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeLink, link: target}
}

func (e tarEntry) withMode(m int64) tarEntry       { e.mode, e.modeSet = m, true; return e }
func (e tarEntry) withOwner(uid, gid int) tarEntry { e.uid, e.gid = uid, gid; return e }
func (e tarEntry) withTime(t time.Time) tarEntry   { e.mtime = t; return e }
func (e tarEntry) withPAX(k, v string) tarEntry {
	m := map[string]string{}
	for kk, vv := range e.pax {
		m[kk] = vv
	}
	m[k] = v
	e.pax = m
	return e
}

// buildTar writes the entries as an uncompressed tar.
func buildTar(tb testing.TB, entries ...tarEntry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:       e.name,
			Typeflag:   e.typ,
			Linkname:   e.link,
			Mode:       e.mode,
			Uid:        e.uid,
			Gid:        e.gid,
			Devmajor:   e.major,
			Devminor:   e.minor,
			ModTime:    e.mtime,
			PAXRecords: e.pax,
		}
		if h.Mode == 0 && !e.modeSet {
			h.Mode = 0o644
			if e.typ == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.ModTime.IsZero() {
			h.ModTime = testTime
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if e.pax != nil {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(h); err != nil {
			tb.Fatalf("tar header %s: %v", e.name, err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				tb.Fatalf("tar body %s: %v", e.name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatalf("tar close: %v", err)
	}
	return buf.Bytes()
}
