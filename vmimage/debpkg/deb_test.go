package debpkg

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

const testControl = `Package: berth-test
Version: 1:1.0-1
Architecture: amd64
Depends: libc6 (>= 2.34), foo | bar, baz:any
Description: test package
 with a continuation line
`

func testDeb(t *testing.T) []byte {
	t.Helper()
	deb, err := BuildDeb(testControl, []TarEntry{
		{Name: "./", Mode: 0o755},
		{Name: "./bin/", Mode: 0o755},
		{Name: "./bin/busybox", Mode: 0o755, Body: []byte("#!fake busybox")},
		{Name: "./bin/sh", Link: "busybox"},
		{Name: "./usr/share/doc/x", Mode: 0o644, Body: []byte("odd")}, // odd size: ar padding
	})
	if err != nil {
		t.Fatal(err)
	}
	return deb
}

func TestReadDeb(t *testing.T) {
	deb := testDeb(t)
	var members []string
	if err := WalkAr(bytes.NewReader(deb), func(name string, size int64, _ io.Reader) error {
		members = append(members, fmt.Sprintf("%s:%t", name, size > 0))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"debian-binary:true", "control.tar.gz:true", "data.tar.gz:true"}; !reflect.DeepEqual(members, want) {
		t.Fatalf("members %v", members)
	}
	ctl, err := Control(bytes.NewReader(deb))
	if err != nil {
		t.Fatal(err)
	}
	if ctl["Package"] != "berth-test" || ctl["Version"] != "1:1.0-1" || ctl["Description"] != "test package\nwith a continuation line" {
		t.Fatalf("control %v", ctl)
	}
	if got := DependsNames(ctl["Depends"]); !reflect.DeepEqual(got, []string{"libc6", "foo", "baz"}) {
		t.Fatalf("depends %v", got)
	}
	files, links, err := ReadFiles(bytes.NewReader(deb), func(n string) bool { return strings.HasPrefix(n, "bin/") })
	if err != nil {
		t.Fatal(err)
	}
	if string(files["bin/busybox"]) != "#!fake busybox" || len(files) != 1 || links["bin/sh"] != "busybox" {
		t.Fatalf("files %v links %v", files, links)
	}
	var names []string
	if err := WalkData(bytes.NewReader(deb), func(h *tar.Header, _ io.Reader) error {
		names = append(names, h.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"", "bin", "bin/busybox", "bin/sh", "usr/share/doc/x"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("data names %q", names)
	}
}

func TestMalformed(t *testing.T) {
	if err := WalkAr(strings.NewReader("not an ar archive"), nil); !errors.Is(err, ErrFormat) {
		t.Fatalf("bad magic: %v", err)
	}
	deb := testDeb(t)
	if err := WalkAr(bytes.NewReader(deb[:len(arMagic)+30]), func(string, int64, io.Reader) error { return nil }); !errors.Is(err, ErrFormat) {
		t.Fatalf("truncated header: %v", err)
	}
	// An ar archive without data.tar.
	if _, _, err := ReadFiles(strings.NewReader(arMagic), func(string) bool { return true }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no data member: %v", err)
	}
}

func TestDecompressFormats(t *testing.T) {
	payload := bytes.Repeat([]byte("berth "), 1000)
	var xzb, zsb bytes.Buffer
	xw, err := xz.NewWriter(&xzb)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write(payload)
	xw.Close()
	zw, _ := zstd.NewWriter(&zsb)
	zw.Write(payload)
	zw.Close()
	for name, data := range map[string][]byte{"data.tar.xz": xzb.Bytes(), "data.tar.zst": zsb.Bytes(), "data.tar": payload} {
		r, done, err := Decompress(name, bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := io.ReadAll(r)
		done()
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("%s: %d bytes, %v", name, len(got), err)
		}
	}
	if _, _, err := Decompress("data.tar.lzma", nil); !errors.Is(err, ErrFormat) {
		t.Fatalf("lzma: %v", err)
	}
}

func TestParseParagraphs(t *testing.T) {
	ps, err := ParseParagraphs(strings.NewReader("Package: a\nVersion: 1\n\n\nPackage: b\nSHA256: ab\n"))
	if err != nil || len(ps) != 2 || ps[1]["SHA256"] != "ab" {
		t.Fatalf("%v %v", ps, err)
	}
	if _, err := ParseParagraphs(strings.NewReader(" leading continuation\n")); !errors.Is(err, ErrFormat) {
		t.Fatalf("continuation: %v", err)
	}
}
