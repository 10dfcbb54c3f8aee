package vmimage

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/vmimage/initramfs"
	"github.com/berth-dev/berth/vmimage/internal/elftest"
	"github.com/berth-dev/berth/vmimage/kmod"
)

func writeImage(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	m := &Manifest{Version: ManifestVersion, Arch: "amd64", Artifacts: map[string]Artifact{}}
	for n, body := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(body))
		m.Artifacts[n] = Artifact{Kind: KindKernel, Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}
	}
	if err := WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestVerify(t *testing.T) {
	dir := writeImage(t, map[string]string{"vmlinux": "kernel bytes", "initramfs.cpio.zst": "initramfs bytes"})
	m, err := Verify(dir)
	if err != nil || len(m.Artifacts) != 2 {
		t.Fatalf("fresh image: %v", err)
	}
	// Same size, one byte changed.
	if err := os.WriteFile(filepath.Join(dir, "vmlinux"), []byte("kernel bytez"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(dir); !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "vmlinux") {
		t.Fatalf("modified artifact: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "vmlinux"), []byte("kernel bytes"), 0o644)
	os.Remove(filepath.Join(dir, "initramfs.cpio.zst"))
	if _, err := Verify(dir); !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "initramfs") {
		t.Fatalf("missing artifact: %v", err)
	}
	os.WriteFile(filepath.Join(dir, ManifestName), []byte(`{"version": 99}`), 0o644)
	if _, err := Verify(dir); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad manifest: %v", err)
	}
}

func TestVerifyRejectsPathsOutsideDir(t *testing.T) {
	dir := writeImage(t, map[string]string{"vmlinux": "k"})
	m, _ := ReadManifest(dir)
	m.Artifacts["../etc/passwd"] = Artifact{Size: 1, SHA256: "00"}
	WriteManifest(dir, m)
	if _, err := Verify(dir); !errors.Is(err, ErrInvalid) {
		t.Fatalf("artifact outside dir: %v", err)
	}
}

func TestInitramfsFromModuleTree(t *testing.T) {
	root := t.TempDir()
	mod := func(rel string, kv ...string) {
		p := filepath.Join(root, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, elftest.Module(kv...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mod("kernel/fs/overlayfs/overlay.ko", "depends=")
	mod("kernel/net/bridge/bridge.ko", "depends=stp,llc")
	mod("kernel/net/802/stp.ko", "depends=llc")
	mod("kernel/net/llc/llc.ko", "depends=")
	mod("kernel/drivers/unused.ko", "depends=")
	os.WriteFile(filepath.Join(root, "modules.builtin"), []byte("kernel/fs/ext4/ext4.ko\n"), 0o644)
	g, err := ScanModules(root)
	if err != nil {
		t.Fatal(err)
	}
	ws := wants("bridge", "overlay", "ext4")
	ws[1].Stage = StageBackground
	res, stages, err := g.Stages(ws, []string{StageBoot, StageNetwork, StageBackground})
	if err != nil {
		t.Fatal(err)
	}
	busybox := []byte("\x00[\x00[[\x00ash\x00cat\x00echo\x00httpd\x00ls\x00mkdir\x00rm\x00sh\x00sleep\x00true\x00\x00")
	a, err := Initramfs(InitramfsInput{
		Agent: []byte("AGENT"), Busybox: busybox, DemoImage: []byte("TAR"),
		KernelRelease: "6.1.0-test", ModuleRoot: root, Modules: res.Load, Stages: stages, Graph: g,
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := a.Bytes(initramfs.Zstd)
	if err != nil {
		t.Fatal(err)
	}
	es, err := initramfs.ReadEntries(img)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]initramfs.Entry{}
	for _, e := range es {
		got[e.Path] = e
	}
	if e := got["init"]; string(e.Data) != "AGENT" || e.Mode != 0o755 {
		t.Errorf("/init %+v", e)
	}
	if e := got["bin/sh"]; e.Link != "busybox" {
		t.Errorf("/bin/sh %+v", e)
	}
	if string(got["etc/berth/demo-image.tar"].Data) != "TAR" {
		t.Error("demo image missing")
	}
	wantLoad := "/lib/modules/6.1.0-test/kernel/net/llc/llc.ko\n/lib/modules/6.1.0-test/kernel/net/802/stp.ko\n" +
		"/lib/modules/6.1.0-test/kernel/net/bridge/bridge.ko\n"
	if l := string(got["lib/modules/berth.load"].Data); l != wantLoad {
		t.Errorf("load list:\n%s", l)
	}
	if l := string(got["lib/modules/berth-background.load"].Data); l != "/lib/modules/6.1.0-test/kernel/fs/overlayfs/overlay.ko\n" {
		t.Errorf("background load list:\n%s", l)
	}
	if _, ok := got["lib/modules/berth-network.load"]; ok {
		t.Error("empty network stage written")
	}
	if _, ok := got["lib/modules/6.1.0-test/kernel/drivers/unused.ko"]; ok {
		t.Error("unrequested module included")
	}
	if e := got["lib/modules/6.1.0-test/kernel/net/bridge/bridge.ko"]; len(e.Data) == 0 {
		t.Error("bridge.ko missing")
	}
	if !strings.Contains(string(got["lib/modules/6.1.0-test/modules.dep"].Data), "kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko") {
		t.Errorf("modules.dep %q", got["lib/modules/6.1.0-test/modules.dep"].Data)
	}
	if e := got["dev/console"]; e.Rmajor != 5 || e.Rminor != 1 {
		t.Errorf("console %+v", e)
	}
}

func TestDefaultModulesResolveOnBothArches(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		ws := DefaultModules(arch)
		seen := map[string]bool{}
		for _, w := range ws {
			if seen[w.Name] {
				t.Errorf("%s: %s twice", arch, w.Name)
			}
			seen[w.Name] = true
		}
		for _, must := range []string{"virtio_net", "vsock", "overlay", "nf_tables", "nft_masq", "ext4", "9pnet_virtio", "virtiofs", "veth", "bridge"} {
			if !seen[must] {
				t.Errorf("%s: %s not wanted", arch, must)
			}
		}
		// The engine cannot start without the uplink and the data disk, nor set up container networking
		// without bridge and nftables: those are never left to the background stage.
		for _, w := range ws {
			switch w.Name {
			case "virtio_mmio", "virtio_net", "virtio_blk", "ext4", "crc32c_generic":
				if w.Stage != StageBoot {
					t.Errorf("%s: %s not in the boot stage", arch, w.Name)
				}
			case "bridge", "veth", "nf_tables", "nft_masq", "nft_nat", "nft_chain_nat", "nft_ct", "br_netfilter":
				if w.Stage != StageNetwork {
					t.Errorf("%s: %s not in the network stage", arch, w.Name)
				}
			}
		}
	}
}

func TestBuildRejectsBadOptions(t *testing.T) {
	if _, err := Build(t.Context(), Options{Arch: "riscv64", Out: t.TempDir()}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("arch: %v", err)
	}
	if _, err := Build(t.Context(), Options{Arch: "amd64"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("out: %v", err)
	}
}

func wants(names ...string) []kmod.Want {
	var w []kmod.Want
	for _, n := range names {
		w = append(w, kmod.Want{Name: n})
	}
	return w
}

func TestCheckStatic(t *testing.T) {
	if err := checkStatic([]byte("#!/bin/sh\n")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("script: %v", err)
	}
	if err := checkStatic(elftest.Executable(nil, []byte{1})); err != nil {
		t.Fatalf("static ELF: %v", err)
	}
	self, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Skip("no /bin/sh to test a dynamic executable with")
	}
	if err := checkStatic(self); !errors.Is(err, ErrInvalid) {
		t.Fatalf("dynamic /bin/sh: %v", err)
	}
}
