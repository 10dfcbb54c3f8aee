package initramfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"reflect"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

func sample(t *testing.T, reverse bool) *Archive {
	t.Helper()
	type op func(a *Archive) error
	ops := []op{
		func(a *Archive) error { return a.File("/init", 0o755, []byte("agent")) },
		func(a *Archive) error {
			return a.File("etc/berth/demo-image.tar", 0o644, bytes.Repeat([]byte("x"), 5000))
		},
		func(a *Archive) error { return a.Symlink("bin/sh", "busybox") },
		func(a *Archive) error { return a.Dir("tmp", 0o777|fs.ModeSticky) },
		func(a *Archive) error { return a.CharDev("dev/console", 0o600, 5, 1) },
		func(a *Archive) error { return a.File("usr/bin/su", 0o755|fs.ModeSetuid, []byte("su")) },
		func(a *Archive) error { return a.File("empty", 0o644, nil) },
	}
	a := New()
	for i := range ops {
		if reverse {
			i = len(ops) - 1 - i
		}
		if err := ops[i](a); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

func TestRoundTrip(t *testing.T) {
	for _, c := range []Compression{None, Gzip, Zstd} {
		b, err := sample(t, false).Bytes(c)
		if err != nil {
			t.Fatal(c, err)
		}
		es, err := ReadEntries(b)
		if err != nil {
			t.Fatal(c, err)
		}
		got := map[string]Entry{}
		var order []string
		for _, e := range es {
			got[e.Path] = e
			order = append(order, e.Path)
		}
		wantOrder := []string{"bin", "bin/sh", "dev", "dev/console", "empty", "etc", "etc/berth", "etc/berth/demo-image.tar", "init", "tmp", "usr", "usr/bin", "usr/bin/su"}
		if !reflect.DeepEqual(order, wantOrder) {
			t.Fatalf("%s: order %v", c, order)
		}
		if e := got["init"]; e.Mode != 0o755 || string(e.Data) != "agent" || e.UID != 0 {
			t.Errorf("%s: init %+v", c, e)
		}
		if e := got["bin/sh"]; e.Mode.Type() != fs.ModeSymlink || e.Link != "busybox" {
			t.Errorf("%s: symlink %+v", c, e)
		}
		if e := got["tmp"]; e.Mode != fs.ModeDir|fs.ModeSticky|0o777 {
			t.Errorf("%s: tmp mode %v", c, e.Mode)
		}
		if e := got["etc/berth"]; e.Mode != fs.ModeDir|0o755 {
			t.Errorf("%s: implicit parent mode %v", c, e.Mode)
		}
		if e := got["dev/console"]; e.Mode != fs.ModeDevice|fs.ModeCharDevice|0o600 || e.Rmajor != 5 || e.Rminor != 1 {
			t.Errorf("%s: console %+v", c, e)
		}
		if e := got["usr/bin/su"]; e.Mode != fs.ModeSetuid|0o755 {
			t.Errorf("%s: setuid mode %v", c, e.Mode)
		}
		if e := got["etc/berth/demo-image.tar"]; len(e.Data) != 5000 {
			t.Errorf("%s: big file %d bytes", c, len(e.Data))
		}
	}
}

func TestRecordsAreFixed(t *testing.T) {
	var raw bytes.Buffer
	if err := sample(t, false).WriteCPIO(&raw); err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw.Bytes())))
	if err != nil {
		t.Fatal(err)
	}
	// The reader hides the trailer; it must still be there, padded.
	if !bytes.Contains(raw.Bytes()[raw.Len()-128:], []byte(cpio.Trailer+"\x00")) || raw.Len()%4 != 0 {
		t.Fatal("no trailer record at the end")
	}
	if len(recs) != 13 {
		t.Fatalf("%d records", len(recs))
	}
	for i, r := range recs {
		if r.MTime != MTime || r.UID != 0 || r.GID != 0 || r.Ino != uint64(i+1) {
			t.Errorf("record %s: mtime %d uid %d gid %d ino %d", r.Name, r.MTime, r.UID, r.GID, r.Ino)
		}
	}
}

func TestReproducible(t *testing.T) {
	for _, c := range []Compression{Gzip, Zstd} {
		a, err := sample(t, false).Bytes(c)
		if err != nil {
			t.Fatal(err)
		}
		b, err := sample(t, true).Bytes(c) // same entries, added in reverse order
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("%s: two builds of the same entries differ (%d vs %d bytes)", c, len(a), len(b))
		}
	}
}

func TestInvalid(t *testing.T) {
	a := New()
	if err := a.File("/", 0o644, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("root path: %v", err)
	}
	a.File("bin", 0o755, []byte("file"))
	a.File("bin/sh", 0o755, []byte("x"))
	if _, err := a.Bytes(None); !errors.Is(err, ErrInvalid) {
		t.Fatalf("file with children: %v", err)
	}
	if _, err := New().Bytes("lz4"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("compression: %v", err)
	}
	if err := a.Add(Entry{Path: "l", Mode: fs.ModeSymlink}); err != nil {
		t.Fatal(err)
	}
	a2 := New()
	a2.Add(Entry{Path: "l", Mode: fs.ModeSymlink})
	if _, err := a2.Bytes(None); !errors.Is(err, ErrInvalid) {
		t.Fatalf("symlink without target: %v", err)
	}
}

func TestConcat(t *testing.T) {
	base, _ := sample(t, false).Bytes(Zstd)
	over := New()
	over.File("init", 0o755, []byte("test init"))
	top, _ := over.Bytes(None)
	var out bytes.Buffer
	if err := Concat(&out, bytes.NewReader(base), bytes.NewReader(top)); err != nil {
		t.Fatal(err)
	}
	pad := (4 - len(base)%4) % 4
	if out.Len() != len(base)+pad+len(top) {
		t.Fatalf("concat %d bytes, want %d", out.Len(), len(base)+pad+len(top))
	}
	second := out.Bytes()[len(base)+pad:]
	if (len(base)+pad)%4 != 0 || !bytes.Equal(second, top) || !bytes.Equal(out.Bytes()[len(base):len(base)+pad], make([]byte, pad)) {
		t.Fatal("second archive not 4-byte aligned after zero padding")
	}
	es, err := ReadEntries(second)
	if err != nil || len(es) != 1 || string(es[0].Data) != "test init" {
		t.Fatalf("second archive: %v %v", es, err)
	}
	if err := Concat(failWriter{}, bytes.NewReader(base)); err == nil {
		t.Fatal("write error not reported")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }
