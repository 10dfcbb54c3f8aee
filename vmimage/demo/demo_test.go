package demo

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// fakeBusybox has an applet name table like busybox's, between other bytes.
var fakeBusybox = []byte("\x7fELF junk\x00[\x00[[\x00ash\x00cat\x00echo\x00httpd\x00ls\x00mkdir\x00rm\x00sh\x00sleep\x00true\x00\x00\x01\x02more")

func TestApplets(t *testing.T) {
	got, err := Applets(fakeBusybox)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"[", "[[", "ash", "cat", "echo", "httpd", "ls", "mkdir", "rm", "sh", "sleep", "true"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("applets %v", got)
	}
	if _, err := Applets([]byte("no table here")); !errors.Is(err, ErrNoApplets) {
		t.Fatalf("no table: %v", err)
	}
}

func TestTarball(t *testing.T) {
	var a, b bytes.Buffer
	if err := Tarball(&a, fakeBusybox, "arm64"); err != nil {
		t.Fatal(err)
	}
	if err := Tarball(&b, fakeBusybox, "arm64"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("demo tarball is not reproducible")
	}
	data := a.Bytes()
	tag, _ := name.NewTag(Tag)
	img, err := tarball.Image(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Architecture != "arm64" || cf.OS != "linux" || !reflect.DeepEqual(cf.Config.Cmd, Cmd) {
		t.Fatalf("config %+v", cf)
	}
	layers, _ := img.Layers()
	if len(layers) != 1 {
		t.Fatalf("%d layers", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]*tar.Header{}
	var page []byte
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = h
		if h.Name == "var/www/index.html" {
			page, _ = io.ReadAll(tr)
		}
	}
	if string(page) != WelcomePage {
		t.Errorf("page %q", page)
	}
	if h := files["bin/httpd"]; h == nil || h.Linkname != "busybox" {
		t.Errorf("httpd applet link %+v", h)
	}
	if h := files["bin/busybox"]; h == nil || h.Size != int64(len(fakeBusybox)) || h.Mode != 0o755 {
		t.Errorf("busybox %+v", h)
	}
}
