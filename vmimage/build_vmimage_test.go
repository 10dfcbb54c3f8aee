//go:build vmimage

// Slow end-to-end test of Build: downloads Debian packages (network, apt-get,
// xz; about 70 MB per architecture, cached in $BERTH_VMIMAGE_CACHE or a
// temporary directory) and builds the image twice to check that the result
// is reproducible. Run with:
//
//	go test -tags vmimage -run TestBuild -timeout 20m ./vmimage/
package vmimage

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/berth-dev/berth/vmimage/initramfs"
)

func TestBuildReproducible(t *testing.T) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("needs apt-get (Debian)")
	}
	_, file, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(file), "..")
	cache := os.Getenv("BERTH_VMIMAGE_CACHE")
	if cache == "" {
		cache = t.TempDir()
	}
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			var ms []*Manifest
			for i := 0; i < 2; i++ {
				out := t.TempDir()
				m, err := Build(t.Context(), Options{Arch: arch, Out: out, Cache: cache, SourceDir: src, Offline: i > 0})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := Verify(out); err != nil {
					t.Fatal(err)
				}
				ms = append(ms, m)
				img, err := os.ReadFile(filepath.Join(out, m.Boot.Initramfs))
				if err != nil {
					t.Fatal(err)
				}
				es, err := initramfs.ReadEntries(img)
				if err != nil {
					t.Fatal(err)
				}
				names := map[string]bool{}
				for _, e := range es {
					names[e.Path] = true
				}
				for _, want := range []string{"init", "bin/busybox", "bin/sh", "lib/modules/berth.load", "lib/modules/berth-network.load",
					"lib/modules/berth-background.load", "lib/modules/berth-late.load", "etc/berth/demo-image.tar"} {
					if !names[want] {
						t.Errorf("initramfs lacks %s", want)
					}
				}
			}
			for n, a := range ms[0].Artifacts {
				if b := ms[1].Artifacts[n]; a != b {
					t.Errorf("%s differs between two builds: %+v vs %+v", n, a, b)
				}
			}
			if len(ms[0].Modules) < 30 {
				t.Errorf("only %d modules", len(ms[0].Modules))
			}
			if len(ms[0].ModuleStages[StageNetwork]) < 5 || len(ms[0].ModuleStages[StageBackground]) < 3 {
				t.Errorf("module stages %v", ms[0].ModuleStages)
			}
		})
	}
}
