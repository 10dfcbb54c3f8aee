package image

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/guestagent/image/imagetest"
)

// TestPullBusybox pulls a real busybox image (Debian's static binary) and
// runs the binary from its unpacked layer.
func TestPullBusybox(t *testing.T) {
	img, err := imagetest.Busybox()
	if err != nil {
		t.Skip(err)
	}
	reg := imagetest.NewRegistry()
	t.Cleanup(reg.Close)
	ref, err := imagetest.Push(reg.Host, "library/busybox:1", img)
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	ctx := ctxT(t)
	got, err := s.Pull(ctx, ref, anon())
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := s.LayerDirs(ctx, got.ID)
	if err != nil || len(dirs) != 1 {
		t.Fatalf("LayerDirs = %v, %v", dirs, err)
	}
	out, err := exec.Command(filepath.Join(dirs[0], "bin", "busybox"), "echo", "hello from the layer").Output()
	if err != nil || strings.TrimSpace(string(out)) != "hello from the layer" {
		t.Errorf("run busybox from the layer: %q, %v", out, err)
	}
	if readFile(t, filepath.Join(dirs[0], "var/www/index.html")) != imagetest.WelcomePage {
		t.Error("welcome page")
	}
}
