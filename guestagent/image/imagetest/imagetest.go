// Package imagetest builds small, real container images for berth's tests,
// without Docker Hub: a busybox image from Debian's busybox-static binary,
// and an in-memory registry on 127.0.0.1 to pull them from.
package imagetest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// BusyboxPath is where Debian's busybox-static installs the static binary.
const BusyboxPath = "/usr/bin/busybox"

// WelcomePage is the page the busybox image serves from /var/www.
const WelcomePage = "<h1>berth test page</h1>\n"

// File is one entry of a layer built by Layer.
type File struct {
	Name     string // path inside the image, without a leading slash
	Mode     int64  // permission bits (and setuid etc.)
	Body     []byte // content of a regular file
	Link     string // symlink target (Type tar.TypeSymlink) or hard link target (tar.TypeLink)
	Type     byte   // tar type flag; 0 means a regular file
	UID, GID int
}

// Layer builds an uncompressed layer from files, in order.
func Layer(files []File) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	for _, f := range files {
		typ := f.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: f.Name, Mode: f.Mode, Typeflag: typ, Linkname: f.Link, Uid: f.UID, Gid: f.GID, ModTime: mtime, Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			h.Size = int64(len(f.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", f.Name, err)
		}
		if _, err := tw.Write(f.Body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

// BusyboxFiles returns the files of a minimal busybox root: the static
// binary with a symlink per applet, /etc/passwd and /etc/group with root,
// nobody and app (1000), /tmp and the welcome page in /var/www.
func BusyboxFiles() ([]File, error) {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("busybox-static is needed for test images (apt-get install busybox-static): %w", err)
	}
	out, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("list busybox applets: %w", err)
	}
	dir := func(n string, mode int64) File { return File{Name: n + "/", Mode: mode, Type: tar.TypeDir} }
	files := []File{
		dir("bin", 0o755), dir("etc", 0o755), dir("tmp", 0o1777), dir("root", 0o700),
		dir("var", 0o755), dir("var/www", 0o755), dir("home", 0o755), dir("home/app", 0o755),
		dir("proc", 0o555), dir("sys", 0o555), dir("dev", 0o755),
		{Name: "bin/busybox", Mode: 0o755, Body: bin},
		{Name: "etc/passwd", Mode: 0o644, Body: []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")},
		{Name: "etc/group", Mode: 0o644, Body: []byte("root:x:0:\napp:x:1000:\nstaff:x:50:app\nnogroup:x:65534:\n")},
		{Name: "var/www/index.html", Mode: 0o644, Body: []byte(WelcomePage)},
	}
	files = append(files, File{Name: "home/app/.profile", Mode: 0o644, Body: []byte("# app\n"), UID: 1000, GID: 1000})
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		files = append(files, File{Name: "bin/" + applet, Type: tar.TypeSymlink, Link: "busybox", Mode: 0o777})
	}
	return files, nil
}

// Busybox returns a linux image of this machine's architecture whose only
// layer is BusyboxFiles, with cmd as its Cmd (default sh).
func Busybox(cmd ...string) (v1.Image, error) {
	files, err := BusyboxFiles()
	if err != nil {
		return nil, err
	}
	layer, err := Layer(files)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	if len(cmd) == 0 {
		cmd = []string{"sh"}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: time.Unix(1700000000, 0).UTC()}
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.Cmd = cmd
	cf.Config.Labels = map[string]string{"org.opencontainers.image.title": "berth-test-busybox"}
	return mutate.ConfigFile(img, cf)
}

// Registry is an in-memory registry served on 127.0.0.1.
type Registry struct {
	srv *httptest.Server
	// Host is "127.0.0.1:PORT", usable in references.
	Host string
}

// NewRegistry starts an in-memory registry; Close stops it.
func NewRegistry() *Registry {
	srv := httptest.NewServer(registry.New(registry.Logger(nopLogger())))
	return &Registry{srv: srv, Host: strings.TrimPrefix(srv.URL, "http://")}
}

// Close stops the registry.
func (r *Registry) Close() { r.srv.Close() }

// Push writes img to the registry at host as repo:tag ("team/app:1") and
// returns the full reference.
func Push(host, repoTag string, img v1.Image) (string, error) {
	ref := host + "/" + repoTag
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(tag, img); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	return ref, nil
}
