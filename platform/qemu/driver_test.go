package qemu

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/guestagent/sysinit"
	"github.com/berth-dev/berth/hostshim/instance"
	"github.com/berth-dev/berth/platform"
)

// The host side may not import guest packages, so the guest's fixed values are repeated here.
func TestGuestConstants(t *testing.T) {
	if guestEngineSocket != sysinit.EngineSocket || guestSSHPort != sysinit.SSHPort || controlPortName != sysinit.ControlPort {
		t.Fatal("platform/qemu and guestagent/sysinit disagree on the guest's fixed values")
	}
}

func TestImageDir(t *testing.T) {
	has := map[string]bool{"/opt/berth/share/berth/vm/arm64/manifest.json": true}
	exists := func(p string) bool { return has[filepath.ToSlash(p)] }
	if d, _ := imageDir("/x", "/env", "/opt/berth/bin/berth", "arm64", exists); d != "/x" {
		t.Errorf("explicit: %s", d)
	}
	if d, _ := imageDir("", "/env", "/opt/berth/bin/berth", "arm64", exists); d != "/env" {
		t.Errorf("env: %s", d)
	}
	if d, err := imageDir("", "", "/opt/berth/bin/berth", "arm64", exists); filepath.ToSlash(d) != "/opt/berth/share/berth/vm/arm64" {
		t.Errorf("installed: %s %v", d, err)
	}
	if _, err := imageDir("", "", "/opt/berth/bin/berth", "amd64", exists); !errors.Is(err, ErrNoImage) {
		t.Errorf("missing: %v", err)
	}
}

func TestSocketDir(t *testing.T) {
	if socketDir("/home/me/.berth/default") != "/home/me/.berth/default" {
		t.Error("short dir moved")
	}
	long := "/" + strings.Repeat("x", 120)
	if d := socketDir(long); len(d) > maxSocketDir || d == long || socketDir(long) != d {
		t.Errorf("long dir: %s", d)
	}
}

func newTestInstance(t *testing.T) *instance.Instance {
	t.Helper()
	store := &instance.Store{Root: t.TempDir()}
	inst, err := store.Create("t", instance.Config{Driver: Name})
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func TestInstanceConfig(t *testing.T) {
	inst := newTestInstance(t)
	d := New(inst.Platform(), Options{Shares: []string{"/home/me", `C:\Users\me`}, Debug: true})
	cfg, err := d.instanceConfig()
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.AuthorizedKeys) != 1 || !strings.Contains(string(cfg.HostKey), "PRIVATE KEY") || cfg.DataDisk != "/dev/vda" || cfg.Name != "t" {
		t.Errorf("config %+v", cfg)
	}
	if len(cfg.Shares) != 2 || cfg.Shares[0].GuestPath != "/home/me" || cfg.Shares[0].Tag != "share0" || cfg.Shares[0].Type != "9p" {
		t.Errorf("shares %+v", cfg.Shares)
	}
	if filepath.VolumeName(`C:\Users\me`) != "" && cfg.Shares[1].GuestPath != "/c/Users/me" {
		t.Errorf("windows share %+v", cfg.Shares[1])
	}
	if len(cfg.Agent) != 1 || cfg.Agent[0] != "--debug" {
		t.Errorf("agent args %v", cfg.Agent)
	}
	// Nothing secret in the plan that goes on QEMU's command line.
	vm := testVM("amd64", AccelTCG)
	argv, _ := Cmdline(vm)
	if strings.Contains(strings.Join(argv, " "), "PRIVATE") {
		t.Error("key on the command line")
	}
}

// TestLifecycleWithoutVM covers what needs no QEMU run: create (disk), states, dial and stop refusals.
func TestLifecycleWithoutVM(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("needs qemu-system-x86_64 on PATH for Preflight")
	}
	img := t.TempDir()
	os.WriteFile(filepath.Join(img, "manifest.json"), []byte("{}"), 0o644)
	inst := newTestInstance(t)
	d := New(inst.Platform(), Options{ImageDir: img, Arch: "amd64", DiskSizeGiB: 1})
	ctx := context.Background()
	if st, err := d.Status(ctx); err != nil || st.State != platform.StateNotCreated {
		t.Fatalf("status %+v %v", st, err)
	}
	if err := d.Start(ctx); !errors.Is(err, platform.ErrNotCreated) {
		t.Fatalf("start before create: %v", err)
	}
	for range 2 {
		if err := d.Create(ctx); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(filepath.Join(inst.Dir, "disk.raw"))
	if err != nil || st.Size() != 1<<30 {
		t.Fatalf("disk %v %v", st, err)
	}
	if _, err := exec.LookPath("mkfs.ext4"); err == nil {
		f, _ := os.Open(filepath.Join(inst.Dir, "disk.raw"))
		b := make([]byte, 2048)
		f.ReadAt(b, 0)
		f.Close()
		if binary.LittleEndian.Uint16(b[1080:]) != 0xEF53 {
			t.Error("disk not formatted ext4")
		}
	}
	if s, err := d.Status(ctx); err != nil || s.State != platform.StateStopped {
		t.Fatalf("status %+v %v", s, err)
	}
	if _, err := d.Dial(ctx); !errors.Is(err, platform.ErrNotRunning) {
		t.Fatalf("dial: %v", err)
	}
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := d.Status(ctx); s.State != platform.StateNotCreated {
		t.Fatalf("after delete: %+v", s)
	}
}

// TestQMP talks to a fake QMP server: greeting, capabilities, an event before the reply.
func TestQMP(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "q.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte(`{"QMP": {"version": {}, "capabilities": []}}` + "\r\n"))
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			var m map[string]string
			json.Unmarshal(sc.Bytes(), &m)
			switch m["execute"] {
			case "qmp_capabilities":
				c.Write([]byte(`{"return": {}}` + "\r\n"))
			case "query-status":
				c.Write([]byte(`{"event": "RESUME", "timestamp": {}}` + "\r\n" + `{"return": {"status": "running", "running": true}}` + "\r\n"))
			default:
				c.Write([]byte(`{"error": {"class": "CommandNotFound", "desc": "nope"}}` + "\r\n"))
			}
		}
	}()
	raw, err := qmp(context.Background(), sock, "query-status")
	if err != nil || !strings.Contains(string(raw), `"running"`) {
		t.Fatalf("query-status: %s %v", raw, err)
	}
}

// TestWriteInitrdReuse: the instance initrd is rewritten only when the base image or the config changes.
func TestWriteInitrdReuse(t *testing.T) {
	inst := newTestInstance(t)
	base := filepath.Join(t.TempDir(), "initramfs.cpio")
	if err := os.WriteFile(base, []byte("070701BASE"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := New(inst.Platform(), Options{Shares: []string{"/home/me"}})
	if err := d.writeInitrd(base); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(d.p.initrd)
	if err != nil || !strings.HasPrefix(string(first), "070701BASE") || len(first) < 100 {
		t.Fatalf("initrd %q… %v", first[:min(len(first), 16)], err)
	}
	st1, _ := os.Stat(d.p.initrd)
	// Unchanged: kept (same inode).
	if err := d.writeInitrd(base); err != nil {
		t.Fatal(err)
	}
	if st2, _ := os.Stat(d.p.initrd); !os.SameFile(st1, st2) {
		t.Error("initrd rewritten although nothing changed")
	}
	// Another config (shares): rewritten.
	d2 := New(inst.Platform(), Options{Shares: []string{"/home/other"}})
	if err := d2.writeInitrd(base); err != nil {
		t.Fatal(err)
	}
	st3, _ := os.Stat(d.p.initrd)
	if os.SameFile(st1, st3) {
		t.Error("initrd kept although the config changed")
	}
	// Another base: rewritten, with the new base.
	if err := os.WriteFile(base, []byte("070701BASE2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d2.writeInitrd(base); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(d.p.initrd); !strings.HasPrefix(string(b), "070701BASE2") {
		t.Error("initrd not rewritten for a new base image")
	}
}
