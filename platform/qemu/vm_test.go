//go:build vm

package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/hostshim/instance"
	"github.com/berth-dev/berth/platform"
	"github.com/berth-dev/berth/platform/platformtest"
)

// VM tests (`go test -tags vm ./platform/qemu/`, used by `make test-vm`) boot the real image under QEMU
// (TCG here). BERTH_VMIMAGE names the image directory (default /tmp/berth-vm-ARCH), BERTH_VM_ARCH the
// guest architecture (default the host's; another one runs under TCG).

func vmOptions(t *testing.T) Options {
	t.Helper()
	arch := os.Getenv("BERTH_VM_ARCH")
	if arch == "" {
		arch = runtime.GOARCH
	}
	img := os.Getenv(ImageEnv)
	if img == "" {
		img = "/tmp/berth-vm-" + arch
	}
	if !isFile(img + "/manifest.json") {
		t.Skipf("no VM image in %s: go run ./cmd/berth-vmimage build --arch %s --out %s", img, arch, img)
	}
	return Options{ImageDir: img, Arch: arch, Shares: []string{t.TempDir()}, DiskSizeGiB: 2, Progress: func(m string) { t.Log(m) }}
}

func TestVMConformance(t *testing.T) {
	opts := vmOptions(t)
	platformtest.Timeout = 3 * time.Minute
	platformtest.Run(t, func(t *testing.T, inst platform.Instance) platform.Driver {
		return New(inst, opts)
	})
}

func newVMInstance(t *testing.T) *instance.Instance {
	t.Helper()
	store := &instance.Store{Root: t.TempDir()}
	inst, err := store.Create("vm", instance.Config{Driver: Name})
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// newInstanceAt loads the instance in dir (for its keys).
func newInstanceAt(t *testing.T, dir string) *instance.Instance {
	t.Helper()
	store := &instance.Store{Root: filepath.Dir(dir)}
	inst, err := store.Load(filepath.Base(dir))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func TestVMBoot(t *testing.T) {
	opts := vmOptions(t)
	inst := newVMInstance(t)
	d := New(inst.Platform(), opts)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := d.Create(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Delete(context.Background())
	t0 := time.Now()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("Start: %v", time.Since(t0))
	st, err := d.Status(ctx)
	t.Logf("status %+v %v", st, err)
	b, _ := os.ReadFile(d.AgentLog())
	t.Logf("serial:\n%s", b)
}

// TestVMBootFailure: an image without /init panics the kernel; Start fails at once with the console's tail.
func TestVMBootFailure(t *testing.T) {
	opts := vmOptions(t)
	img := t.TempDir()
	m, err := os.ReadFile(filepath.Join(opts.ImageDir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man struct {
		Boot struct{ Kernel, Initramfs string }
	}
	if err := json.Unmarshal(m, &man); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(img, "manifest.json"), m, 0o644)
	os.Symlink(filepath.Join(opts.ImageDir, man.Boot.Kernel), filepath.Join(img, man.Boot.Kernel))
	os.WriteFile(filepath.Join(img, man.Boot.Initramfs), nil, 0o644) // no /init
	opts.ImageDir = img
	inst := newVMInstance(t)
	d := New(inst.Platform(), opts)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := d.Create(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Delete(context.Background())
	err = d.Start(ctx)
	if !errors.Is(err, platform.ErrAgentFailed) || !strings.Contains(err.Error(), "serial console") || !strings.Contains(err.Error(), "Kernel panic") {
		t.Fatalf("Start of a broken image: %v", err)
	}
	t.Logf("Start failed as expected:\n%v", err)
	if st, _ := d.Status(ctx); st.State != platform.StateStopped {
		t.Fatalf("status after a failed start: %+v", st)
	}
}

// TestVMGuestFormat: a data disk without a filesystem (a host without mkfs.ext4) is formatted by the guest.
func TestVMGuestFormat(t *testing.T) {
	opts := vmOptions(t)
	inst := newVMInstance(t)
	d := New(inst.Platform(), opts)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := d.Create(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Delete(context.Background())
	if err := os.Truncate(d.p.disk, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(d.p.disk, 1<<30); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(d.AgentLog())
	if !strings.Contains(string(b), "formatting it with busybox mke2fs") || !strings.Contains(string(b), "data disk mounted") {
		t.Fatalf("console:\n%s", b)
	}
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// The second boot finds the filesystem.
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(d.AgentLog()); strings.Contains(string(b), "formatting") {
		t.Fatalf("formatted again:\n%s", b)
	}
}

// TestVMGrowDisk: a larger DiskSizeGiB at Start grows the image and the guest's filesystem.
func TestVMGrowDisk(t *testing.T) {
	opts := vmOptions(t)
	opts.DiskSizeGiB = 1
	inst := newVMInstance(t)
	d := New(inst.Platform(), opts)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := d.Create(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Delete(context.Background())
	d.opts.DiskSizeGiB = 3
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(d.p.disk)
	if st.Size() != 3<<30 {
		t.Fatalf("disk image %d bytes", st.Size())
	}
	e := newEngineClient(t, d, inst.Dir)
	out, err := sessionOutput(e.tc, "df -k /var/lib/berth | tail -1")
	if err != nil {
		t.Fatalf("df: %v %s", err, out)
	}
	var fs string
	var kb int64
	fmt.Sscan(out, &fs, &kb)
	if kb < 2<<20 {
		t.Fatalf("filesystem not grown: %q\n%s", out, tail(d.AgentLog(), 10))
	}
	t.Logf("df: %s", strings.TrimSpace(out))
}
