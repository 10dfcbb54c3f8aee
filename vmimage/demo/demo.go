// Package demo builds berth's built-in demo container image: busybox httpd
// serving a berth welcome page, so that `make demo` works offline. The image
// is written as a `docker save` tarball that the agent's image store loads
// (berth/demo:latest), for the VM's architecture: the busybox binary comes
// from that architecture's busybox-static package.
package demo

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Tag is the reference of the demo image.
const Tag = "berth/demo:latest"

// Cmd is the demo image's command.
var Cmd = []string{"httpd", "-f", "-v", "-p", "80", "-h", "/var/www"}

// WelcomePage is served at / by the demo image.
const WelcomePage = `<!doctype html>
<html><head><meta charset="utf-8"><title>Welcome to berth</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1>Welcome to berth</h1>
<p>This page is served by busybox httpd in a container of the berth/demo image,
running in berth's VM and forwarded to your host.</p>
</body></html>
`

// ErrNoApplets: the busybox binary has no recognisable applet table.
var ErrNoApplets = errors.New("demo: no busybox applet table found")

// created is the fixed creation time of the image (reproducible digests).
var created = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Applets returns the applet names compiled into a busybox binary of any
// architecture, read from its sorted, NUL-separated name table (the same
// list `busybox --list` prints), without running it.
func Applets(busybox []byte) ([]string, error) {
	i := bytes.Index(busybox, []byte("\x00[\x00[[\x00"))
	if i < 0 {
		return nil, ErrNoApplets
	}
	var out []string
	for rest := busybox[i+1:]; ; {
		j := bytes.IndexByte(rest, 0)
		if j <= 0 || !appletName(rest[:j]) {
			break
		}
		out = append(out, string(rest[:j]))
		rest = rest[j+1:]
	}
	if len(out) < 10 || !sort.StringsAreSorted(out) {
		return nil, ErrNoApplets
	}
	return out, nil
}

func appletName(b []byte) bool {
	for _, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '['
		if !ok {
			return false
		}
	}
	return true
}

// Image returns the demo image for GOARCH arch with the given static busybox
// binary.
func Image(busybox []byte, arch string) (v1.Image, error) {
	applets, err := Applets(busybox)
	if err != nil {
		return nil, err
	}
	layer, err := rootLayer(busybox, applets)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("demo image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("demo image: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: created}
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.Cmd = Cmd
	cf.Config.ExposedPorts = map[string]struct{}{"80/tcp": {}}
	cf.Config.Labels = map[string]string{"org.opencontainers.image.title": "berth demo"}
	return mutate.ConfigFile(img, cf)
}

// Tarball writes the demo image as a `docker save` tarball tagged Tag.
func Tarball(w io.Writer, busybox []byte, arch string) error {
	img, err := Image(busybox, arch)
	if err != nil {
		return err
	}
	tag, err := name.NewTag(Tag)
	if err != nil {
		return fmt.Errorf("demo tag: %w", err)
	}
	if err := tarball.Write(tag, img, w); err != nil {
		return fmt.Errorf("demo tarball: %w", err)
	}
	return nil
}

func rootLayer(busybox []byte, applets []string) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	put := func(h *tar.Header, body []byte) error {
		h.ModTime, h.Format = created, tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("demo layer %s: %w", h.Name, err)
		}
		_, err := tw.Write(body)
		return err
	}
	dir := func(n string, mode int64) error {
		return put(&tar.Header{Name: n + "/", Mode: mode, Typeflag: tar.TypeDir}, nil)
	}
	file := func(n string, mode int64, body string) error {
		return put(&tar.Header{Name: n, Mode: mode, Typeflag: tar.TypeReg, Size: int64(len(body))}, []byte(body))
	}
	for _, d := range []struct {
		n string
		m int64
	}{{"bin", 0o755}, {"dev", 0o755}, {"etc", 0o755}, {"proc", 0o555}, {"root", 0o700}, {"sys", 0o555}, {"tmp", 0o1777}, {"var", 0o755}, {"var/www", 0o755}} {
		if err := dir(d.n, d.m); err != nil {
			return nil, err
		}
	}
	if err := put(&tar.Header{Name: "bin/busybox", Mode: 0o755, Typeflag: tar.TypeReg, Size: int64(len(busybox))}, busybox); err != nil {
		return nil, err
	}
	for _, a := range applets {
		if a == "busybox" {
			continue
		}
		if err := put(&tar.Header{Name: "bin/" + a, Mode: 0o777, Typeflag: tar.TypeSymlink, Linkname: "busybox"}, nil); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct{ n, body string }{
		{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"},
		{"etc/group", "root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n"},
		{"var/www/index.html", WelcomePage},
	} {
		if err := file(f.n, 0o644, f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("demo layer: %w", err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		return nil, fmt.Errorf("demo layer: %w", err)
	}
	return l, nil
}
