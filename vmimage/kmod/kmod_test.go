package kmod

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/vmimage/internal/elftest"
)

const synthDep = `kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/fs/overlayfs/overlay.ko:
`

const synthBuiltin = `kernel/drivers/virtio/virtio.ko
kernel/net/packet/af_packet.ko
`

func synthGraph(t *testing.T) *Graph {
	t.Helper()
	g := NewGraph()
	if err := ParseModulesDep(g, strings.NewReader(synthDep)); err != nil {
		t.Fatal(err)
	}
	if err := ParseBuiltin(g, strings.NewReader(synthBuiltin)); err != nil {
		t.Fatal(err)
	}
	return g
}

func paths(ms []*Module) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Path)
	}
	return out
}

func TestResolveOrderAndBuiltin(t *testing.T) {
	g := synthGraph(t)
	// modules.dep lists transitive closures: failover must still appear
	// once, before both modules that need it.
	res, err := g.Resolve([]Want{{Name: "virtio_net"}, {Name: "virtio"}, {Name: "ext4"}, {Name: "virtio-rng"}, {Name: "af_packet"}, {Name: "nope", Optional: true}})
	if err != nil {
		t.Fatal(err)
	}
	got := paths(res.Load)
	pos := map[string]int{}
	for i, p := range got {
		if _, dup := pos[p]; dup {
			t.Fatalf("%s twice in %v", p, got)
		}
		pos[p] = i
	}
	before := func(a, b string) {
		t.Helper()
		if pos[a] >= pos[b] {
			t.Errorf("%s must load before %s: %v", a, b, got)
		}
	}
	before("kernel/net/core/failover.ko", "kernel/drivers/net/net_failover.ko")
	before("kernel/drivers/net/net_failover.ko", "kernel/drivers/net/virtio_net.ko")
	before("kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/net/virtio_net.ko")
	before("kernel/fs/jbd2/jbd2.ko", "kernel/fs/ext4/ext4.ko")
	before("kernel/lib/crc16.ko", "kernel/fs/ext4/ext4.ko")
	if len(got) != 9 {
		t.Errorf("load list %v, want 9 modules", got)
	}
	if _, ok := pos["kernel/fs/overlayfs/overlay.ko"]; ok {
		t.Error("overlay was not requested")
	}
	if !reflect.DeepEqual(res.Builtin, []string{"af_packet", "virtio"}) {
		t.Errorf("builtin %v", res.Builtin)
	}
	if !reflect.DeepEqual(res.Missing, []string{"nope"}) {
		t.Errorf("missing %v", res.Missing)
	}
	// Deterministic.
	res2, _ := g.Resolve([]Want{{Name: "virtio_net"}, {Name: "virtio"}, {Name: "ext4"}, {Name: "virtio-rng"}, {Name: "af_packet"}, {Name: "nope", Optional: true}})
	if !reflect.DeepEqual(paths(res2.Load), got) {
		t.Error("resolution is not deterministic")
	}
}

func TestResolveErrors(t *testing.T) {
	g := synthGraph(t)
	if _, err := g.Resolve([]Want{{Name: "nope"}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("required missing module: %v", err)
	}
	g.Add(&Module{Name: "broken", Path: "kernel/broken.ko", Depends: []string{"gone"}})
	if _, err := g.Resolve([]Want{{Name: "broken", Optional: true}}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("missing dependency of a present optional module: %v", err)
	}
	g.Add(&Module{Name: "a", Path: "a.ko", Depends: []string{"b"}})
	g.Add(&Module{Name: "b", Path: "b.ko", Depends: []string{"a"}})
	if _, err := g.Resolve([]Want{{Name: "a"}}); !errors.Is(err, ErrCycle) {
		t.Fatalf("cycle: %v", err)
	}
	if err := ParseModulesDep(NewGraph(), strings.NewReader("no colon here\n")); !errors.Is(err, ErrFormat) {
		t.Fatalf("bad modules.dep: %v", err)
	}
}

func TestModinfoSoftdepAlias(t *testing.T) {
	g := NewGraph()
	add := func(path string, kv ...string) {
		t.Helper()
		m, err := ModuleFromELF(path, elftest.Module(kv...))
		if err != nil {
			t.Fatal(err)
		}
		g.Add(m)
	}
	add("kernel/fs/ext4/ext4.ko", "license=GPL", "softdep=pre: crc32c", "depends=jbd2,mbcache", "name=ext4")
	add("kernel/fs/jbd2/jbd2.ko", "depends=", "name=jbd2")
	add("kernel/fs/mbcache.ko", "depends=")
	add("kernel/arch/x86/crypto/crc32c-intel.ko", "alias=crc32c", "alias=crypto-crc32c", "depends=")
	add("kernel/crypto/crc32c_generic.ko", "alias=crc32c", "alias=crypto-crc32c", "alias=pci:v*d*", "depends=")
	if m := g.Modules["crc32c_intel"]; m == nil || m.Path != "kernel/arch/x86/crypto/crc32c-intel.ko" {
		t.Fatalf("dash in file name: %+v", g.Modules)
	}
	res, err := g.Resolve([]Want{{Name: "ext4"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kernel/crypto/crc32c_generic.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/fs/mbcache.ko", "kernel/fs/ext4/ext4.ko"}
	if got := paths(res.Load); !reflect.DeepEqual(got, want) {
		t.Fatalf("load %v, want %v", got, want)
	}
	dep := string(ModulesDep(res.Load, g))
	if !strings.Contains(dep, "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko\n") {
		t.Errorf("modules.dep:\n%s", dep)
	}
	if got := string(LoadList(res.Load)); got != strings.Join(want, "\n")+"\n" {
		t.Errorf("load list %q", got)
	}
	if _, err := ModuleFromELF("x.ko", []byte("not an elf")); !errors.Is(err, ErrFormat) {
		t.Errorf("non-ELF: %v", err)
	}
}

func TestNameOf(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/char/hw_random/virtio-rng.ko": "virtio_rng",
		"kernel/fs/ext4/ext4.ko.xz":                   "ext4",
		"a/b/9pnet_virtio.ko.zst":                     "9pnet_virtio",
	} {
		if got := NameOf(in); got != want {
			t.Errorf("NameOf(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestStages(t *testing.T) {
	g := synthGraph(t)
	want := []Want{
		{Name: "overlay", Stage: "background"},
		{Name: "ext4"},
		{Name: "virtio-rng", Stage: "background"},
		{Name: "net_failover", Stage: "net"},
		{Name: "virtio_net", Stage: "background"},
		{Name: "nope", Optional: true, Stage: "background"},
	}
	names := []string{"", "net", "background"}
	res, stages, err := g.Stages(want, names)
	if err != nil {
		t.Fatal(err)
	}
	all, err := g.Resolve(want)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Load) != len(all.Load) || !reflect.DeepEqual(res.Missing, []string{"nope"}) || len(stages) != 3 {
		t.Fatalf("stages lost modules: %v, missing %v; resolve: %v", paths(res.Load), res.Missing, paths(all.Load))
	}
	for i, w := range [][]string{
		{"kernel/fs/jbd2/jbd2.ko", "kernel/fs/mbcache.ko", "kernel/lib/crc16.ko", "kernel/fs/ext4/ext4.ko"},
		{"kernel/net/core/failover.ko", "kernel/drivers/net/net_failover.ko"},
		// virtio_ring is needed by virtio_net and virtio-rng, both background: it is a background module;
		// failover, needed by virtio_net too, is in the earlier stage already.
		{"kernel/fs/overlayfs/overlay.ko", "kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/char/hw_random/virtio-rng.ko", "kernel/drivers/net/virtio_net.ko"},
	} {
		got := paths(stages[i])
		slices.Sort(got)
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Errorf("stage %q: %v, want %v", names[i], got, w)
		}
	}
	// The concatenation respects every dependency.
	pos := map[string]int{}
	for i, m := range res.Load {
		pos[m.Name] = i
	}
	for _, m := range res.Load {
		for _, d := range m.Depends {
			if p, ok := pos[d]; ok && p > pos[m.Name] {
				t.Errorf("%s loads before its dependency %s: %v", m.Name, d, paths(res.Load))
			}
		}
	}
	// Only the boot stage: the same as Resolve.
	res, stages, err = g.Stages([]Want{{Name: "ext4"}}, []string{""})
	if err != nil || len(stages) != 1 || !reflect.DeepEqual(paths(stages[0]), paths(res.Load)) || len(res.Load) != 4 {
		t.Fatalf("boot stage only: %v, %v", paths(res.Load), err)
	}
	if _, _, err := g.Stages([]Want{{Name: "gone", Stage: "bg"}}, []string{"", "bg"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing module: %v", err)
	}
	if _, _, err := g.Stages([]Want{{Name: "ext4", Stage: "later"}}, []string{""}); !errors.Is(err, ErrStage) {
		t.Fatal("unknown stage accepted")
	}
}
