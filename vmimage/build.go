package vmimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/berth-dev/berth/vmimage/debpkg"
	"github.com/berth-dev/berth/vmimage/demo"
	"github.com/berth-dev/berth/vmimage/initramfs"
	"github.com/berth-dev/berth/vmimage/kernel"
	"github.com/berth-dev/berth/vmimage/kmod"
)

// Options configures Build.
type Options struct {
	Arch        string                // GOARCH of the VM: amd64 or arm64
	Out         string                // output directory (created)
	Cache       string                // download and extraction cache; default Out/../.berth-vmimage-cache
	Agent       string                // static linux berth-agent for Arch; empty: build ./cmd/berth-agent from SourceDir
	SourceDir   string                // berth source tree for the agent build; default "."
	Modules     []kmod.Want           // default DefaultModules(Arch)
	Compression initramfs.Compression // default none: under TCG the kernel takes ~100 ms more to unpack a zstd one at every boot
	Offline     bool                  // do not refresh package lists when the cache has some
	Sources     string                // deb822 sources for apt; default debpkg.DefaultSources
	XZ          string                // xz tool for the bzImage payload; default "xz"
	Logger      *slog.Logger
}

// DefaultModules are the modules berth's guest needs, by name; each is
// resolved with its dependencies, and skipped when built in. Each names the
// load stage (LoadStages) by which it must be there: the boot stage holds what
// the agent needs before it can start the engine (the uplink, the data disk);
// the network stage what the engine needs to set up container networking
// (bridge, nftables); the background stage what it needs before it opens its
// containers (control port, shares, overlayfs); the late stage what nothing
// waits for (virtio-pci, vsock, rng, balloon). The guest loads the later
// stages while the boot and the engine's start go on (guestagent/sysinit). Under TCG a module costs 4–150 ms to load
// (ext4: ~150 ms), ~650 ms for all of them.
func DefaultModules(arch string) []kmod.Want {
	var w []kmod.Want
	add := func(stage string, optional bool, names ...string) {
		for _, n := range names {
			w = append(w, kmod.Want{Name: n, Optional: optional, Stage: stage})
		}
	}
	add(StageBoot, false, "virtio_mmio", "virtio_net", "virtio_blk", "ext4")
	// crc32c for ext4's metadata checksums: the virtual CPU under TCG has no SSE4.2 for crc32c-intel.
	add(StageBoot, true, "crc32c_generic")
	add(StageNetwork, false, "veth", "bridge", "br_netfilter",
		"nf_tables", "nf_conntrack", "nf_nat", "nft_chain_nat", "nft_masq", "nft_nat", "nft_ct")
	add(StageBackground, false, "virtio_console", "overlay", "9p", "9pnet_virtio", "virtiofs")
	// Not used by berth's QEMU machine (virtio-mmio devices, the SSH transport over TCP): last.
	add(StageLate, false, "virtio_pci", "vsock", "vmw_vsock_virtio_transport")
	add(StageLate, true, "virtio_rng", "virtio_balloon", "af_packet", "tun", "failover", "net_failover")
	return w
}

// Module load stages (kmod.Want.Stage), in load order.
const (
	StageBoot       = ""
	StageNetwork    = "network"
	StageBackground = "background"
	StageLate       = "late"
)

// LoadStages are the load stages in order with the guest's list file of each: one absolute module path
// per line, dependencies first (a module may depend on earlier stages'). The agent's sysinit loads the
// boot stage's before anything else of the boot, the others one after the other in the background.
var LoadStages = []struct{ Name, Path string }{
	{StageBoot, LoadListPath},
	{StageNetwork, "/lib/modules/berth-network.load"},
	{StageBackground, "/lib/modules/berth-background.load"},
	{StageLate, "/lib/modules/berth-late.load"},
}

// LoadListPath is the boot stage's list, and the only list of images from before the stages.
const LoadListPath = "/lib/modules/berth.load"

// DemoImagePath is where the demo image tarball lives in the initramfs.
const DemoImagePath = "/etc/berth/demo-image.tar"

type builder struct {
	o     Options
	log   *slog.Logger
	apt   *debpkg.Apt
	m     *Manifest
	debs  map[string]string // package name → cached .deb path
	start time.Time
}

// step logs the start of a build step and returns a func that logs its end
// with the time it took.
func (b *builder) step(name string) func(args ...any) {
	t := time.Now()
	b.log.Info("step "+name, "arch", b.o.Arch)
	return func(args ...any) {
		b.log.Info("done "+name, append([]any{"took", time.Since(t).Round(time.Millisecond)}, args...)...)
	}
}

// Build builds the VM image for o.Arch into o.Out and returns its manifest.
// It needs apt-get/apt-cache (Debian) and, on amd64, xz.
func Build(ctx context.Context, o Options) (*Manifest, error) {
	if o.Arch != "amd64" && o.Arch != "arm64" {
		return nil, fmt.Errorf("%w: arch %q (amd64 or arm64)", ErrInvalid, o.Arch)
	}
	if o.Out == "" {
		return nil, fmt.Errorf("%w: no output directory", ErrInvalid)
	}
	if o.Cache == "" {
		o.Cache = filepath.Join(filepath.Dir(filepath.Clean(o.Out)), ".berth-vmimage-cache")
	}
	if o.Compression == "" {
		o.Compression = initramfs.None
	}
	if o.Modules == nil {
		o.Modules = DefaultModules(o.Arch)
	}
	if o.SourceDir == "" {
		o.SourceDir = "."
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	for _, d := range []string{o.Out, o.Cache} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
	}
	b := &builder{
		o: o, log: log, debs: map[string]string{}, start: time.Now(),
		apt: &debpkg.Apt{Arch: o.Arch, Dir: filepath.Join(o.Cache, "apt-"+o.Arch), Sources: o.Sources, Offline: o.Offline, Logger: log},
		m:   &Manifest{Version: ManifestVersion, Arch: o.Arch, Artifacts: map[string]Artifact{}},
	}
	if err := b.run(ctx); err != nil {
		return nil, err
	}
	log.Info("image built", "arch", o.Arch, "out", o.Out, "took", time.Since(b.start).Round(time.Millisecond))
	return b.m, nil
}

func (b *builder) run(ctx context.Context) error {
	kpkg, bbpkg, err := b.resolvePackages(ctx)
	if err != nil {
		return err
	}
	kdir, err := b.extractKernel(ctx, kpkg)
	if err != nil {
		return err
	}
	if err := b.writeKernel(ctx, kdir); err != nil {
		return err
	}
	res, stages, graph, err := b.modules(kdir)
	if err != nil {
		return err
	}
	busybox, err := b.busybox(bbpkg)
	if err != nil {
		return err
	}
	agent, err := b.agent(ctx)
	if err != nil {
		return err
	}
	done := b.step("demo image")
	var demoTar bytes.Buffer
	if err := demo.Tarball(&demoTar, busybox, b.o.Arch); err != nil {
		return err
	}
	done("bytes", demoTar.Len())
	done = b.step("initramfs")
	a, err := Initramfs(InitramfsInput{
		Agent: agent, Busybox: busybox, DemoImage: demoTar.Bytes(),
		KernelRelease: b.m.KernelRelease, ModuleRoot: filepath.Join(kdir, "lib", "modules", b.m.KernelRelease),
		Modules: res.Load, Stages: stages, Graph: graph,
	})
	if err != nil {
		return err
	}
	name := "initramfs.cpio"
	if b.o.Compression != initramfs.None {
		name += map[initramfs.Compression]string{initramfs.Gzip: ".gz", initramfs.Zstd: ".zst"}[b.o.Compression]
	}
	img, err := a.Bytes(b.o.Compression)
	if err != nil {
		return err
	}
	if err := b.artifact(name, KindInitramfs, img); err != nil {
		return err
	}
	b.m.Boot.Initramfs, b.m.Boot.Compressed = name, string(b.o.Compression)
	done("entries", a.Len(), "bytes", len(img))
	return WriteManifest(b.o.Out, b.m)
}

// resolvePackages finds the kernel and busybox-static packages in the index.
func (b *builder) resolvePackages(ctx context.Context) (kpkg, bbpkg debpkg.Package, err error) {
	done := b.step("package index")
	if err := b.apt.Update(ctx); err != nil {
		return kpkg, bbpkg, err
	}
	meta, err := b.apt.Show(ctx, "linux-image-"+b.o.Arch)
	if err != nil {
		return kpkg, bbpkg, err
	}
	var kname string
	for _, d := range debpkg.DependsNames(meta.Depends) {
		if strings.HasPrefix(d, "linux-image-") && d != meta.Name {
			kname = d
			break
		}
	}
	if kname == "" {
		return kpkg, bbpkg, fmt.Errorf("%w: %s depends on no linux-image package (%q)", debpkg.ErrNotFound, meta.Name, meta.Depends)
	}
	if kpkg, err = b.apt.Show(ctx, kname); err != nil {
		return kpkg, bbpkg, err
	}
	if bbpkg, err = b.apt.Show(ctx, "busybox-static"); err != nil {
		return kpkg, bbpkg, err
	}
	b.m.Packages = []debpkg.Package{meta, kpkg, bbpkg}
	done("kernel", kpkg.Name+"="+kpkg.Version, "busybox", bbpkg.Version)
	done = b.step("download")
	for _, p := range []debpkg.Package{kpkg, bbpkg} {
		path, err := b.apt.Fetch(ctx, p, b.o.Cache)
		if err != nil {
			return kpkg, bbpkg, err
		}
		b.debs[p.Name] = path
	}
	done()
	return kpkg, bbpkg, nil
}

// extractKernel unpacks boot/ and lib/modules/ of the kernel package into
// the cache (once per package SHA256) and returns that directory.
func (b *builder) extractKernel(ctx context.Context, p debpkg.Package) (string, error) {
	dir := filepath.Join(b.o.Cache, "extract", p.SHA256)
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		b.log.Info("kernel package already extracted", "dir", dir)
		return dir, b.findRelease(dir)
	}
	done := b.step("extract kernel package")
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("extract %s: %w", p.Name, err)
	}
	f, err := os.Open(b.debs[p.Name])
	if err != nil {
		return "", fmt.Errorf("extract %s: %w", p.Name, err)
	}
	defer f.Close()
	n := 0
	err = debpkg.WalkData(f, func(h *tar.Header, body io.Reader) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := strings.TrimPrefix(h.Name, "usr/")
		if !strings.HasPrefix(name, "boot/") && !strings.HasPrefix(name, "lib/modules/") {
			return nil
		}
		if h.Typeflag != tar.TypeReg || !fs.ValidPath(name) {
			return nil
		}
		dst := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("extract %s: %w", name, err)
		}
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("extract %s: %w", name, err)
		}
		if _, err := io.Copy(out, body); err != nil {
			out.Close()
			return fmt.Errorf("extract %s: %w", name, err)
		}
		n++
		return out.Close()
	})
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ".complete"), nil, 0o644); err != nil {
		return "", fmt.Errorf("extract %s: %w", p.Name, err)
	}
	done("files", n)
	return dir, b.findRelease(dir)
}

func (b *builder) findRelease(dir string) error {
	ents, err := os.ReadDir(filepath.Join(dir, "lib", "modules"))
	if err != nil || len(ents) != 1 {
		return fmt.Errorf("%w: kernel package has %d module trees (%v)", debpkg.ErrFormat, len(ents), err)
	}
	b.m.KernelRelease = ents[0].Name()
	return nil
}

func (b *builder) writeKernel(ctx context.Context, kdir string) error {
	done := b.step("kernel")
	rel := b.m.KernelRelease
	vmlinuz, err := os.ReadFile(filepath.Join(kdir, "boot", "vmlinuz-"+rel))
	if err != nil {
		return fmt.Errorf("kernel %s: %w", rel, err)
	}
	b.m.Boot.Cmdline = "console=hvc0 console=ttyS0 panic=-1 quiet"
	switch b.o.Arch {
	case "amd64":
		if err := b.artifact("bzImage", KindKernelAlt, vmlinuz); err != nil {
			return err
		}
		b.m.Boot.KernelAlt = "bzImage"
		b.m.Boot.Console = "ttyS0"
		b.m.Boot.Cmdline = "console=ttyS0 reboot=t panic=-1 quiet"
		b.m.Boot.TSCNote = "under TCG add tsc_early_khz=<host TSC kHz>"
		vm, err := kernel.Vmlinux(ctx, vmlinuz, b.o.XZ)
		if err != nil {
			return err
		}
		entry, err := kernel.PVHEntry(vm)
		if errors.Is(err, kernel.ErrNoPVH) {
			b.log.Warn("kernel has no PVH entry; boot the bzImage with -M pc", "release", rel)
			b.m.Boot.Machine, b.m.Boot.Kernel = "pc", "bzImage"
			done()
			return nil
		}
		if err != nil {
			return err
		}
		if err := b.artifact("vmlinux", KindKernel, vm); err != nil {
			return err
		}
		b.m.Boot.Machine, b.m.Boot.Kernel, b.m.Boot.PVHEntry = "microvm", "vmlinux", fmt.Sprintf("%#x", entry)
		done("release", rel, "vmlinux", len(vm), "bzImage", len(vmlinuz), "pvh", b.m.Boot.PVHEntry)
	case "arm64":
		img, err := kernel.Arm64Image(vmlinuz)
		if err != nil {
			return err
		}
		if err := b.artifact("Image", KindKernel, img); err != nil {
			return err
		}
		b.m.Boot.Machine, b.m.Boot.Kernel, b.m.Boot.Console = "virt", "Image", "ttyAMA0"
		b.m.Boot.Cmdline = "console=ttyAMA0 panic=-1 quiet"
		done("release", rel, "Image", len(img))
	}
	return nil
}

// modules scans the kernel's module tree and resolves the wanted set into its load stages (res.Load
// holds them all, in order; stages[i] is LoadStages[i]'s).
func (b *builder) modules(kdir string) (kmod.Result, [][]*kmod.Module, *kmod.Graph, error) {
	done := b.step("modules")
	root := filepath.Join(kdir, "lib", "modules", b.m.KernelRelease)
	g, err := ScanModules(root)
	if err != nil {
		return kmod.Result{}, nil, nil, err
	}
	var names []string
	for _, st := range LoadStages {
		names = append(names, st.Name)
	}
	res, stages, err := g.Stages(b.o.Modules, names)
	if err != nil {
		return kmod.Result{}, nil, nil, err
	}
	for _, m := range res.Load {
		b.m.Modules = append(b.m.Modules, m.Path)
	}
	counts := map[string]int{}
	for i, st := range stages {
		counts[LoadStages[i].Name] = len(st)
		if i == 0 {
			continue
		}
		for _, m := range st {
			if b.m.ModuleStages == nil {
				b.m.ModuleStages = map[string][]string{}
			}
			b.m.ModuleStages[LoadStages[i].Name] = append(b.m.ModuleStages[LoadStages[i].Name], m.Path)
		}
	}
	b.m.Builtin, b.m.Missing = res.Builtin, res.Missing
	done("scanned", len(g.Modules), "load", len(res.Load), "stages", counts, "builtin", len(res.Builtin), "missing", res.Missing)
	return res, stages, g, nil
}

// ScanModules builds the module graph of an extracted module tree
// (lib/modules/<release>): modules.builtin plus every module's modinfo.
// Module paths in the graph name the uncompressed file (".ko").
func ScanModules(root string) (*kmod.Graph, error) {
	g := kmod.NewGraph()
	if f, err := os.Open(filepath.Join(root, "modules.builtin")); err == nil {
		err = kmod.ParseBuiltin(g, f)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !isModule(d.Name()) {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		ko, err := readModule(p)
		if err != nil {
			return err
		}
		m, err := kmod.ModuleFromELF(stripCompression(filepath.ToSlash(rel)), ko)
		if err != nil {
			return err
		}
		g.Add(m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan modules %s: %w", root, err)
	}
	return g, nil
}

func isModule(n string) bool {
	return strings.HasSuffix(n, ".ko") || strings.HasSuffix(n, ".ko.xz") || strings.HasSuffix(n, ".ko.zst")
}

func stripCompression(p string) string {
	return strings.TrimSuffix(strings.TrimSuffix(p, ".xz"), ".zst")
}

// readModule returns the uncompressed bytes of a .ko, .ko.xz or .ko.zst.
func readModule(p string) ([]byte, error) {
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(p, ".xz") && !strings.HasSuffix(p, ".zst") {
		return raw, nil
	}
	r, closeFn, err := debpkg.Decompress(p, bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	defer closeFn()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", p, err)
	}
	return b, nil
}

func (b *builder) busybox(p debpkg.Package) ([]byte, error) {
	f, err := os.Open(b.debs[p.Name])
	if err != nil {
		return nil, fmt.Errorf("busybox: %w", err)
	}
	defer f.Close()
	files, _, err := debpkg.ReadFiles(f, func(n string) bool { return n == "bin/busybox" || n == "usr/bin/busybox" })
	if err != nil {
		return nil, err
	}
	for _, bb := range files {
		return bb, nil
	}
	return nil, fmt.Errorf("%w: no busybox binary in %s", debpkg.ErrNotFound, p.Name)
}

// agent returns the berth-agent binary: o.Agent, or a fresh static build.
func (b *builder) agent(ctx context.Context) ([]byte, error) {
	done := b.step("agent")
	var bin []byte
	var err error
	if b.o.Agent != "" {
		bin, err = os.ReadFile(b.o.Agent)
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		b.m.Agent.Source = b.o.Agent
	} else {
		b.m.Agent.Commit = gitDescribe(ctx, b.o.SourceDir)
		bin, err = buildAgent(ctx, b.o.SourceDir, b.o.Arch, b.m.Agent.Commit)
		if err != nil {
			return nil, err
		}
		b.m.Agent.Source = "built"
	}
	if err := checkStatic(bin); err != nil {
		return nil, err
	}
	if bi, err := buildinfo.Read(bytes.NewReader(bin)); err == nil {
		b.m.Agent.GoVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch {
			case s.Key == "GOARCH" && s.Value != b.o.Arch:
				return nil, fmt.Errorf("%w: agent is built for %s, image is %s", ErrInvalid, s.Value, b.o.Arch)
			case s.Key == "vcs.revision" && b.m.Agent.Commit == "":
				b.m.Agent.Commit = s.Value
			}
		}
	}
	sum := sha256.Sum256(bin)
	b.m.Agent.SHA256, b.m.Agent.Size = hex.EncodeToString(sum[:]), int64(len(bin))
	done("bytes", len(bin), "commit", b.m.Agent.Commit)
	return bin, nil
}

// checkStatic rejects an agent that is not a static ELF: as /init it runs
// before any library could be found.
func checkStatic(bin []byte) error {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("%w: agent is not an ELF executable: %v", ErrInvalid, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%w: agent is dynamically linked (build with CGO_ENABLED=0)", ErrInvalid)
		}
	}
	return nil
}

func gitDescribe(ctx context.Context, dir string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "describe", "--always", "--dirty", "--abbrev=12").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// buildAgent compiles ./cmd/berth-agent of dir for linux/arch, static.
func buildAgent(ctx context.Context, dir, arch, commit string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "berth-vmimage-agent-")
	if err != nil {
		return nil, fmt.Errorf("agent build: %w", err)
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "berth-agent")
	ldflags := "-s -w -X main.commit=" + commit
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = "go"
	}
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-ldflags", ldflags, "-o", out, "./cmd/berth-agent")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("agent build (go build ./cmd/berth-agent in %s): %w: %s", dir, err, bytes.TrimSpace(msg))
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("agent build: %w", err)
	}
	return bin, nil
}

func (b *builder) artifact(name, kind string, data []byte) error {
	if err := writeFileAtomic(filepath.Join(b.o.Out, name), data, 0o644); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	b.m.Artifacts[name] = Artifact{Kind: kind, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	return nil
}

// InitramfsInput is what goes into the base initramfs.
type InitramfsInput struct {
	Agent         []byte           // static berth-agent, becomes /init
	Busybox       []byte           // static busybox, /bin/busybox with a symlink per applet
	DemoImage     []byte           // docker-save tarball at DemoImagePath; nil: none
	KernelRelease string           // /lib/modules/<release>
	ModuleRoot    string           // extracted lib/modules/<release> to read module files from
	Modules       []*kmod.Module   // load order
	Stages        [][]*kmod.Module // LoadStages[i]'s modules (all of them in Modules); nil: all in the boot stage
	Graph         *kmod.Graph      // for modules.dep
}

// Initramfs assembles the base initramfs (not yet compressed).
func Initramfs(in InitramfsInput) (*initramfs.Archive, error) {
	a := initramfs.New()
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	for _, d := range []struct {
		p    string
		mode fs.FileMode
	}{
		{"bin", 0o755}, {"dev", 0o755}, {"etc", 0o755}, {"etc/berth", 0o755}, {"lib", 0o755},
		{"mnt", 0o755}, {"proc", 0o555}, {"root", 0o700}, {"run", 0o755}, {"sys", 0o555},
		{"tmp", 0o777 | fs.ModeSticky}, {"usr", 0o755}, {"var", 0o755}, {"var/lib", 0o755}, {"var/log", 0o755},
	} {
		add(a.Dir(d.p, d.mode))
	}
	add(a.File("init", 0o755, in.Agent))
	add(a.Symlink("bin/berth-agent", "../init"))
	add(a.Symlink("sbin", "bin"))
	add(a.Symlink("usr/bin", "../bin"))
	add(a.Symlink("usr/sbin", "../bin"))
	add(a.CharDev("dev/console", 0o600, 5, 1))
	add(a.CharDev("dev/null", 0o666, 1, 3))
	add(a.File("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")))
	add(a.File("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")))
	add(a.File("etc/hostname", 0o644, []byte("berth\n")))
	add(a.File("bin/busybox", 0o755, in.Busybox))
	applets, err := demo.Applets(in.Busybox)
	if err != nil {
		return nil, fmt.Errorf("initramfs busybox: %w", err)
	}
	for _, ap := range applets {
		if ap == "busybox" {
			continue
		}
		add(a.Symlink(path.Join("bin", ap), "busybox"))
	}
	if in.DemoImage != nil {
		add(a.File(DemoImagePath, 0o644, in.DemoImage))
	}
	modDir := path.Join("lib/modules", in.KernelRelease)
	lists := make([]bytes.Buffer, len(LoadStages))
	stageOf := map[*kmod.Module]int{}
	for i, st := range in.Stages {
		for _, m := range st {
			stageOf[m] = i
		}
	}
	for _, m := range in.Modules {
		ko, err := readModuleAny(in.ModuleRoot, m.Path)
		if err != nil {
			return nil, fmt.Errorf("initramfs module %s: %w", m.Name, err)
		}
		add(a.File(path.Join(modDir, m.Path), 0o644, ko))
		fmt.Fprintf(&lists[stageOf[m]], "/%s/%s\n", modDir, m.Path)
	}
	if in.KernelRelease != "" {
		if in.Graph != nil {
			add(a.File(path.Join(modDir, "modules.dep"), 0o644, kmod.ModulesDep(in.Modules, in.Graph)))
			if b, err := os.ReadFile(filepath.Join(in.ModuleRoot, "modules.builtin")); err == nil {
				add(a.File(path.Join(modDir, "modules.builtin"), 0o644, b))
			}
		}
		for i, st := range LoadStages {
			if i == 0 || lists[i].Len() > 0 {
				add(a.File(strings.TrimPrefix(st.Path, "/"), 0o644, lists[i].Bytes()))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return a, nil
}

// readModuleAny reads rel (an uncompressed ".ko" path) from root, or its
// .xz/.zst original, decompressed.
func readModuleAny(root, rel string) ([]byte, error) {
	base := filepath.Join(root, filepath.FromSlash(rel))
	for _, suf := range []string{"", ".xz", ".zst"} {
		if _, err := os.Stat(base + suf); err == nil {
			return readModule(base + suf)
		}
	}
	return nil, fmt.Errorf("%w: %s", fs.ErrNotExist, base)
}
