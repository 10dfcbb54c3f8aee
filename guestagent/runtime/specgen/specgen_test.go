package specgen

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

var testRootfs = fstest.MapFS{
	"etc/passwd": {Data: []byte(`# comment
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin

alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:1001::/home/bob:/bin/sh
nohome:x:1002:1002
broken:x:notanumber:1
dup:x:2000:2000::/first:/bin/sh
dup:x:2001:2001::/second:/bin/sh
`)},
	"etc/group": {Data: []byte(`root:x:0:
daemon:x:1:
wheel:x:10:alice,bob
audio:x:29:alice
alice:x:1000:
bob:x:1001:
staff:x:50:
`)},
}

func baseOpts() Options {
	return Options{
		ID:     testID,
		Image:  ocispec.ImageConfig{Cmd: []string{"/bin/sh"}},
		Rootfs: testRootfs,
	}
}

func mustGenerate(t *testing.T, o Options) *specs.Spec {
	t.Helper()
	s, err := Generate(o)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if err := Validate(s); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return s
}

// TestArgs mirrors Docker's entrypoint/cmd behaviour: the image's
// ENTRYPOINT/CMD combinations and the run-time overrides.
func TestArgs(t *testing.T) {
	tests := []struct {
		name             string
		imgEntry, imgCmd []string
		entrypoint, cmd  []string
		want             []string
		wantErr          bool
	}{
		{name: "no entrypoint no cmd", wantErr: true},
		{name: "image cmd only", imgCmd: []string{"sh", "-c", "x"}, want: []string{"sh", "-c", "x"}},
		{name: "image entrypoint only", imgEntry: []string{"/ep", "a"}, want: []string{"/ep", "a"}},
		{name: "image entrypoint and cmd", imgEntry: []string{"/ep"}, imgCmd: []string{"--flag"}, want: []string{"/ep", "--flag"}},
		{name: "cmd override replaces image cmd", imgEntry: []string{"/ep"}, imgCmd: []string{"--flag"}, cmd: []string{"run"}, want: []string{"/ep", "run"}},
		{name: "cmd override without entrypoint", imgCmd: []string{"sh"}, cmd: []string{"ls", "-l"}, want: []string{"ls", "-l"}},
		{name: "entrypoint override drops image cmd", imgEntry: []string{"/ep"}, imgCmd: []string{"--flag"}, entrypoint: []string{"/other"}, want: []string{"/other"}},
		{name: "entrypoint and cmd override", imgEntry: []string{"/ep"}, imgCmd: []string{"--flag"}, entrypoint: []string{"/other"}, cmd: []string{"x"}, want: []string{"/other", "x"}},
		{name: "empty entrypoint clears, cmd given", imgEntry: []string{"/ep"}, imgCmd: []string{"--flag"}, entrypoint: []string{}, cmd: []string{"bash"}, want: []string{"bash"}},
		{name: "entrypoint [\"\"] clears, cmd given", imgEntry: []string{"/ep"}, entrypoint: []string{""}, cmd: []string{"bash"}, want: []string{"bash"}},
		{name: "empty entrypoint clears image cmd too", imgEntry: []string{"/ep"}, imgCmd: []string{"--flag"}, entrypoint: []string{}, wantErr: true},
		{name: "empty command name", cmd: []string{"", "x"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := baseOpts()
			o.Image = ocispec.ImageConfig{Entrypoint: tt.imgEntry, Cmd: tt.imgCmd}
			o.Entrypoint, o.Cmd = tt.entrypoint, tt.cmd
			s, err := Generate(o)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Process.Args, tt.want) {
				t.Fatalf("args = %q, want %q", s.Process.Args, tt.want)
			}
		})
	}
	_, err := Generate(Options{ID: testID})
	if err == nil || !strings.Contains(err.Error(), "no command specified") {
		t.Fatalf("err = %v, want no command specified", err)
	}
}

func TestResolveUser(t *testing.T) {
	tests := []struct {
		user     string
		fs       fstest.MapFS
		uid, gid uint32
		gids     []uint32
		home     string
		wantErr  string
	}{
		{user: "", uid: 0, gid: 0, gids: []uint32{0}, home: "/root"},
		{user: "root", uid: 0, gid: 0, gids: []uint32{0}, home: "/root"},
		{user: "alice", uid: 1000, gid: 1000, gids: []uint32{1000, 10, 29}, home: "/home/alice"},
		{user: "bob", uid: 1001, gid: 1001, gids: []uint32{1001, 10}, home: "/home/bob"},
		{user: "1000", uid: 1000, gid: 1000, gids: []uint32{1000, 10, 29}, home: "/home/alice"},
		{user: "alice:staff", uid: 1000, gid: 50, gids: []uint32{50}, home: "/home/alice"},
		{user: "alice:77", uid: 1000, gid: 77, gids: []uint32{77}, home: "/home/alice"},
		{user: "alice:10", uid: 1000, gid: 10, gids: []uint32{10}, home: "/home/alice"},
		{user: "4242", uid: 4242, gid: 0, gids: []uint32{0}, home: "/"},
		{user: "4242:4343", uid: 4242, gid: 4343, gids: []uint32{4343}, home: "/"},
		{user: "nohome", uid: 1002, gid: 1002, gids: []uint32{1002}, home: "/"},
		{user: "dup", uid: 2000, gid: 2000, gids: []uint32{2000}, home: "/first"},
		{user: "xyz", wantErr: "unable to find user xyz: no matching entries in passwd file"},
		{user: "alice:nogroup", wantErr: "unable to find group nogroup: no matching entries in group file"},
		{user: "-1", wantErr: "out of range"},
		{user: "1:-5", wantErr: "out of range"},
		{user: "99999999999", wantErr: "out of range"},
		// Without passwd/group files numeric ids still work; names fail.
		{user: "", fs: fstest.MapFS{}, uid: 0, gid: 0, gids: []uint32{0}, home: "/"},
		{user: "123:456", fs: fstest.MapFS{}, uid: 123, gid: 456, gids: []uint32{456}, home: "/"},
		{user: "alice", fs: fstest.MapFS{}, wantErr: "unable to find user alice"},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			fsys := tt.fs
			if fsys == nil {
				fsys = testRootfs
			}
			u, home, err := ResolveUser(fsys, tt.user)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrInvalid containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.UID != tt.uid || u.GID != tt.gid || !slices.Equal(u.AdditionalGids, tt.gids) || home != tt.home {
				t.Fatalf("got uid=%d gid=%d gids=%v home=%q; want %d %d %v %q", u.UID, u.GID, u.AdditionalGids, home, tt.uid, tt.gid, tt.gids, tt.home)
			}
		})
	}
	if _, home, err := ResolveUser(nil, "7"); err != nil || home != "/" {
		t.Fatalf("nil fs: home=%q err=%v", home, err)
	}
}

func TestCapabilities(t *testing.T) {
	def := DefaultCapabilities()
	if len(def) != 14 {
		t.Fatalf("default caps: %d, want 14", len(def))
	}
	def[0] = "mutated"
	if DefaultCapabilities()[0] != "CAP_CHOWN" {
		t.Fatal("DefaultCapabilities returns shared storage")
	}
	without := func(drop ...string) []string {
		return slices.DeleteFunc(DefaultCapabilities(), func(c string) bool { return slices.Contains(drop, c) })
	}
	tests := []struct {
		name       string
		add, drop  []string
		privileged bool
		want       []string
		wantErr    bool
	}{
		{name: "default", want: DefaultCapabilities()},
		{name: "add prefixed", add: []string{"CAP_NET_ADMIN"}, want: append(DefaultCapabilities(), "CAP_NET_ADMIN")},
		{name: "add lower no prefix", add: []string{"sys_ptrace"}, want: append(DefaultCapabilities(), "CAP_SYS_PTRACE")},
		{name: "add existing no dup", add: []string{"chown"}, want: DefaultCapabilities()},
		{name: "drop", drop: []string{"net_raw", "Cap_Mknod"}, want: without("CAP_NET_RAW", "CAP_MKNOD")},
		{name: "drop all add some", drop: []string{"all"}, add: []string{"chown", "kill"}, want: []string{"CAP_CHOWN", "CAP_KILL"}},
		{name: "drop all", drop: []string{"ALL"}, want: []string{}},
		{name: "add all drop some", add: []string{"ALL"}, drop: []string{"sys_admin"}, want: slices.DeleteFunc(slices.Clone(allCaps), func(c string) bool { return c == "CAP_SYS_ADMIN" })},
		{name: "privileged", privileged: true, drop: []string{"chown"}, want: allCaps},
		{name: "unknown add", add: []string{"CAP_FLY"}, wantErr: true},
		{name: "unknown drop", drop: []string{"teleport"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := baseOpts()
			o.CapAdd, o.CapDrop, o.Privileged = tt.add, tt.drop, tt.privileged
			s, err := Generate(o)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := s.Process.Capabilities
			for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted} {
				if !slices.Equal(set, tt.want) {
					t.Errorf("%s = %v, want %v", name, set, tt.want)
				}
			}
			if len(c.Inheritable) != 0 || len(c.Ambient) != 0 {
				t.Errorf("inheritable/ambient set: %v %v", c.Inheritable, c.Ambient)
			}
		})
	}
	if len(allCaps) != 41 || allCaps[40] != "CAP_CHECKPOINT_RESTORE" || allCaps[21] != "CAP_SYS_ADMIN" {
		t.Fatalf("allCaps is not indexed by capability number")
	}
}

func TestCapabilitiesNonRoot(t *testing.T) {
	o := baseOpts()
	o.User = "alice"
	o.CapAdd = []string{"NET_ADMIN"}
	s := mustGenerate(t, o)
	c := s.Process.Capabilities
	if !slices.Contains(c.Bounding, "CAP_NET_ADMIN") || len(c.Effective) != 0 || len(c.Permitted) != 0 {
		t.Fatalf("non-root caps: %+v; want bounding only", c)
	}
}

func TestEnv(t *testing.T) {
	tests := []struct {
		name     string
		imageEnv []string
		env      []string
		user     string
		tty      bool
		hostname string
		want     []string
		wantErr  bool
	}{
		{name: "defaults", want: []string{"PATH=" + DefaultPathEnv, "HOSTNAME=0123456789ab", "HOME=/root"}},
		{name: "tty", tty: true, want: []string{"PATH=" + DefaultPathEnv, "HOSTNAME=0123456789ab", "TERM=xterm", "HOME=/root"}},
		{name: "image path replaces default in place", imageEnv: []string{"PATH=/opt/bin", "A=1"},
			want: []string{"PATH=/opt/bin", "HOSTNAME=0123456789ab", "A=1", "HOME=/root"}},
		{name: "user env wins over image", imageEnv: []string{"A=1", "B=2"}, env: []string{"B=3", "C=4", "A=5"},
			want: []string{"PATH=" + DefaultPathEnv, "HOSTNAME=0123456789ab", "A=5", "B=3", "C=4", "HOME=/root"}},
		{name: "later wins within user env", env: []string{"X=1", "X=2"},
			want: []string{"PATH=" + DefaultPathEnv, "HOSTNAME=0123456789ab", "X=2", "HOME=/root"}},
		{name: "bare key removes", imageEnv: []string{"A=1", "B=2"}, env: []string{"A", "NOPE"},
			want: []string{"PATH=" + DefaultPathEnv, "HOSTNAME=0123456789ab", "B=2", "HOME=/root"}},
		{name: "empty value kept", env: []string{"E="},
			want: []string{"PATH=" + DefaultPathEnv, "HOSTNAME=0123456789ab", "E=", "HOME=/root"}},
		{name: "home from passwd", user: "alice", want: []string{"PATH=" + DefaultPathEnv, "HOSTNAME=0123456789ab", "HOME=/home/alice"}},
		{name: "home from image env wins", user: "alice", imageEnv: []string{"HOME=/app"},
			want: []string{"PATH=" + DefaultPathEnv, "HOSTNAME=0123456789ab", "HOME=/app"}},
		{name: "home slash without entry", user: "4000", want: []string{"PATH=" + DefaultPathEnv, "HOSTNAME=0123456789ab", "HOME=/"}},
		{name: "user overrides TERM and HOSTNAME", tty: true, hostname: "web", env: []string{"TERM=vt100", "HOSTNAME=other"},
			want: []string{"PATH=" + DefaultPathEnv, "HOSTNAME=other", "TERM=vt100", "HOME=/root"}},
		{name: "empty name", env: []string{"=x"}, wantErr: true},
		{name: "empty name in image", imageEnv: []string{"=x"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := baseOpts()
			o.Image.Env, o.Env, o.User, o.Tty, o.Hostname = tt.imageEnv, tt.env, tt.user, tt.tty, tt.hostname
			s, err := Generate(o)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Process.Env, tt.want) {
				t.Fatalf("env = %q\nwant  %q", s.Process.Env, tt.want)
			}
			if s.Process.Terminal != tt.tty {
				t.Fatalf("terminal = %v", s.Process.Terminal)
			}
		})
	}
}

func TestCwdUserHostname(t *testing.T) {
	tests := []struct {
		name                string
		workdir, imgWorkdir string
		wantCwd             string
		wantErr             bool
	}{
		{name: "default", wantCwd: "/"},
		{name: "image", imgWorkdir: "/app", wantCwd: "/app"},
		{name: "override", imgWorkdir: "/app", workdir: "/srv/x/", wantCwd: "/srv/x"},
		{name: "cleaned", workdir: "/a/../b", wantCwd: "/b"},
		{name: "relative override", workdir: "app", wantErr: true},
		{name: "relative image", imgWorkdir: "app", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := baseOpts()
			o.WorkingDir, o.Image.WorkingDir = tt.workdir, tt.imgWorkdir
			s, err := Generate(o)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Process.Cwd != tt.wantCwd {
				t.Fatalf("cwd = %q, want %q", s.Process.Cwd, tt.wantCwd)
			}
		})
	}

	o := baseOpts()
	o.Image.User = "bob"
	s := mustGenerate(t, o)
	if s.Process.User.UID != 1001 || s.Hostname != "0123456789ab" {
		t.Fatalf("image user/hostname: %+v %q", s.Process.User, s.Hostname)
	}
	o.User = "alice"
	o.Hostname = "box"
	s = mustGenerate(t, o)
	if s.Process.User.UID != 1000 || s.Hostname != "box" {
		t.Fatalf("user override/hostname: %+v %q", s.Process.User, s.Hostname)
	}
	o.User = "ghost"
	if _, err := Generate(o); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "unable to find user ghost") {
		t.Fatalf("unknown user: %v", err)
	}
	o = baseOpts()
	o.Hostname = strings.Repeat("h", 65)
	if _, err := Generate(o); !errors.Is(err, ErrInvalid) {
		t.Fatalf("long hostname: %v", err)
	}
}

func mountByDst(s *specs.Spec, dst string) (specs.Mount, int) {
	n := 0
	var found specs.Mount
	for _, m := range s.Mounts {
		if m.Destination == dst {
			found = m
			n++
		}
	}
	return found, n
}

func TestDefaults(t *testing.T) {
	s := mustGenerate(t, baseOpts())
	if s.Version != "1.2.0" {
		t.Errorf("version %q", s.Version)
	}
	if s.Root.Path != "rootfs" || s.Root.Readonly {
		t.Errorf("root %+v", s.Root)
	}
	if !s.Process.NoNewPrivileges {
		t.Error("NoNewPrivileges not set by default")
	}
	if len(s.Process.Rlimits) != 1 || s.Process.Rlimits[0] != (specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Hard: 1048576, Soft: 1048576}) {
		t.Errorf("rlimits %+v", s.Process.Rlimits)
	}
	wantMounts := []string{"/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"}
	var got []string
	for _, m := range s.Mounts {
		got = append(got, m.Destination)
	}
	if !slices.Equal(got, wantMounts) {
		t.Errorf("mounts %v", got)
	}
	shm, _ := mountByDst(s, "/dev/shm")
	if !slices.Equal(shm.Options, []string{"nosuid", "noexec", "nodev", "mode=1777", "size=67108864"}) || shm.Type != "tmpfs" {
		t.Errorf("shm %+v", shm)
	}
	pts, _ := mountByDst(s, "/dev/pts")
	if !slices.Equal(pts.Options, []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}) {
		t.Errorf("pts %+v", pts)
	}
	var ns []string
	for _, n := range s.Linux.Namespaces {
		if n.Path != "" {
			t.Errorf("namespace %s has path", n.Type)
		}
		ns = append(ns, string(n.Type))
	}
	if !slices.Equal(ns, []string{"pid", "mount", "uts", "ipc", "network", "cgroup"}) {
		t.Errorf("namespaces %v", ns)
	}
	if len(s.Linux.MaskedPaths) != 12 || !slices.Contains(s.Linux.MaskedPaths, "/sys/devices/virtual/powercap") || len(s.Linux.ReadonlyPaths) != 5 {
		t.Errorf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if len(s.Linux.Devices) != 0 {
		t.Errorf("devices %v", s.Linux.Devices)
	}
	d := s.Linux.Resources.Devices
	if d[0].Allow || d[0].Access != "rwm" || d[0].Type != "" {
		t.Errorf("first device rule must deny all: %+v", d[0])
	}
	allowed := func(typ string, major, minor int64) bool {
		ok := false
		for _, r := range d {
			if (r.Type == "" || r.Type == "a" || r.Type == typ) &&
				(r.Major == nil || *r.Major == -1 || *r.Major == major) &&
				(r.Minor == nil || *r.Minor == -1 || *r.Minor == minor) && strings.Contains(r.Access, "r") {
				ok = r.Allow
			}
		}
		return ok
	}
	for _, dev := range [][2]int64{{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 1}, {5, 2}, {136, 4}, {10, 200}} {
		if !allowed("c", dev[0], dev[1]) {
			t.Errorf("device c %d:%d not allowed", dev[0], dev[1])
		}
	}
	for _, dev := range [][2]int64{{10, 229}, {8, 0}, {4, 1}} {
		if allowed("c", dev[0], dev[1]) {
			t.Errorf("device c %d:%d allowed", dev[0], dev[1])
		}
	}
	if s.Linux.Sysctl["net.ipv4.ip_unprivileged_port_start"] != "0" {
		t.Errorf("sysctl %v", s.Linux.Sysctl)
	}
	if r := s.Linux.Resources; r.Memory != nil || r.CPU != nil || r.Pids != nil {
		t.Errorf("unexpected limits %+v", r)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Fatal(err)
	}

	o := baseOpts()
	o.AllowNewPrivileges = true
	o.ReadonlyRootfs = true
	o.RootfsPath = "/var/lib/berth/c/rootfs"
	o.CgroupsPath = "/berth/" + testID
	o.ShmSize = 1 << 20
	s = mustGenerate(t, o)
	if s.Process.NoNewPrivileges || !s.Root.Readonly || s.Root.Path != o.RootfsPath || s.Linux.CgroupsPath != o.CgroupsPath {
		t.Errorf("options not applied: %+v %+v %q", s.Process, s.Root, s.Linux.CgroupsPath)
	}
	shm, _ = mountByDst(s, "/dev/shm")
	if !slices.Contains(shm.Options, "size=1048576") || slices.Contains(shm.Options, "ro") {
		t.Errorf("shm %+v", shm)
	}
	cg, _ := mountByDst(s, "/sys/fs/cgroup")
	if !slices.Contains(cg.Options, "ro") {
		t.Errorf("cgroup mount not ro: %+v", cg)
	}
}

func TestPrivileged(t *testing.T) {
	o := baseOpts()
	o.Privileged = true
	o.Devices = []specs.LinuxDevice{{Path: "/dev/sda", Type: "b", Major: 8, Minor: 0}}
	s := mustGenerate(t, o)
	if len(s.Linux.MaskedPaths) != 0 || len(s.Linux.ReadonlyPaths) != 0 {
		t.Errorf("privileged masked/readonly: %v %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if len(s.Process.Capabilities.Bounding) != len(allCaps) {
		t.Errorf("privileged caps %v", s.Process.Capabilities.Bounding)
	}
	if d := s.Linux.Resources.Devices; len(d) != 1 || !d[0].Allow || d[0].Access != "rwm" {
		t.Errorf("privileged device rules %+v", d)
	}
	if len(s.Linux.Devices) != 1 {
		t.Errorf("devices %+v", s.Linux.Devices)
	}
	for _, dst := range []string{"/sys", "/sys/fs/cgroup"} {
		if m, _ := mountByDst(s, dst); slices.Contains(m.Options, "ro") {
			t.Errorf("%s still ro when privileged: %v", dst, m.Options)
		}
	}

	o.Privileged = false
	o.Devices = []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}}
	s = mustGenerate(t, o)
	last := s.Linux.Resources.Devices[len(s.Linux.Resources.Devices)-1]
	if !last.Allow || *last.Major != 10 || *last.Minor != 229 || len(s.Linux.Devices) != 1 {
		t.Errorf("device not allowed: %+v", last)
	}
	o.Devices = []specs.LinuxDevice{{Path: "/dev/x", Type: "p"}}
	if _, err := Generate(o); !errors.Is(err, ErrInvalid) {
		t.Errorf("fifo device: %v", err)
	}
}

func TestNetworkNamespace(t *testing.T) {
	nsOf := func(s *specs.Spec) (specs.LinuxNamespace, bool) {
		for _, n := range s.Linux.Namespaces {
			if n.Type == specs.NetworkNamespace {
				return n, true
			}
		}
		return specs.LinuxNamespace{}, false
	}
	o := baseOpts()
	o.NetworkNamespace = "host"
	s := mustGenerate(t, o)
	if _, ok := nsOf(s); ok || len(s.Linux.Sysctl) != 0 {
		t.Errorf("host network: %+v %v", s.Linux.Namespaces, s.Linux.Sysctl)
	}
	o.NetworkNamespace = "/run/netns/x"
	s = mustGenerate(t, o)
	if n, ok := nsOf(s); !ok || n.Path != "/run/netns/x" || len(s.Linux.Sysctl) != 0 {
		t.Errorf("netns path: %+v", s.Linux.Namespaces)
	}
	o.NetworkNamespace = "run/netns/x"
	if _, err := Generate(o); !errors.Is(err, ErrInvalid) {
		t.Errorf("relative netns: %v", err)
	}
}

func TestMounts(t *testing.T) {
	tests := []struct {
		name    string
		binds   []Bind
		extra   []specs.Mount
		check   func(t *testing.T, s *specs.Spec)
		wantErr string
	}{
		{
			name:  "bind defaults",
			binds: []Bind{{Source: "/host/data", Destination: "/data"}, {Source: "/host/ro", Destination: "/ro", ReadOnly: true, Propagation: "rslave"}},
			check: func(t *testing.T, s *specs.Spec) {
				m, _ := mountByDst(s, "/data")
				if m.Type != "bind" || m.Source != "/host/data" || !slices.Equal(m.Options, []string{"rbind", "rprivate"}) {
					t.Errorf("bind %+v", m)
				}
				m, _ = mountByDst(s, "/ro")
				if !slices.Equal(m.Options, []string{"rbind", "ro", "rslave"}) {
					t.Errorf("ro bind %+v", m)
				}
				if s.Linux.RootfsPropagation != "rslave" {
					t.Errorf("rootfs propagation %q", s.Linux.RootfsPropagation)
				}
			},
		},
		{
			name:  "shared bind makes root shared",
			binds: []Bind{{Source: "/a", Destination: "/a", Propagation: "rshared"}, {Source: "/b", Destination: "/b", Propagation: "slave"}},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.RootfsPropagation != "shared" {
					t.Errorf("rootfs propagation %q", s.Linux.RootfsPropagation)
				}
			},
		},
		{
			name:  "bind replaces default",
			binds: []Bind{{Source: "/host/shm", Destination: "/dev/shm"}},
			check: func(t *testing.T, s *specs.Spec) {
				m, n := mountByDst(s, "/dev/shm")
				if n != 1 || m.Type != "bind" {
					t.Errorf("/dev/shm: %d mounts, %+v", n, m)
				}
			},
		},
		{
			name:  "bind of /dev drops its children",
			binds: []Bind{{Source: "/dev", Destination: "/dev"}},
			check: func(t *testing.T, s *specs.Spec) {
				for _, m := range s.Mounts {
					if strings.HasPrefix(m.Destination, "/dev/") {
						t.Errorf("left %s", m.Destination)
					}
				}
				if _, n := mountByDst(s, "/dev"); n != 1 {
					t.Errorf("/dev mounted %d times", n)
				}
			},
		},
		{
			name:  "user bind wins over extra mount; order by depth",
			binds: []Bind{{Source: "/h/hosts", Destination: "/etc/hosts"}, {Source: "/h/deep", Destination: "/srv/a/b"}},
			extra: []specs.Mount{
				{Destination: "/etc/hosts", Type: "bind", Source: "/run/hosts", Options: []string{"rbind", "ro"}},
				{Destination: "/etc/resolv.conf", Type: "bind", Source: "/run/resolv.conf", Options: []string{"rbind", "ro"}},
				{Destination: "/srv", Type: "tmpfs", Source: "tmpfs"},
			},
			check: func(t *testing.T, s *specs.Spec) {
				m, n := mountByDst(s, "/etc/hosts")
				if n != 1 || m.Source != "/h/hosts" {
					t.Errorf("/etc/hosts %d %+v", n, m)
				}
				var order []string
				for _, m := range s.Mounts[7:] {
					order = append(order, m.Destination)
				}
				if !slices.Equal(order, []string{"/srv", "/etc/hosts", "/etc/resolv.conf", "/srv/a/b"}) {
					t.Errorf("order %v", order)
				}
			},
		},
		{name: "relative bind source", binds: []Bind{{Source: "data", Destination: "/data"}}, wantErr: "absolute"},
		{name: "empty bind source", binds: []Bind{{Destination: "/data"}}, wantErr: "absolute"},
		{name: "relative destination", binds: []Bind{{Source: "/d", Destination: "data"}}, wantErr: "absolute"},
		{name: "unclean destination", binds: []Bind{{Source: "/d", Destination: "/data/../x"}}, wantErr: "clean"},
		{name: "trailing slash destination", binds: []Bind{{Source: "/d", Destination: "/data/"}}, wantErr: "clean"},
		{name: "root destination", binds: []Bind{{Source: "/d", Destination: "/"}}, wantErr: "can't be '/'"},
		{name: "duplicate bind", binds: []Bind{{Source: "/a", Destination: "/x"}, {Source: "/b", Destination: "/x"}}, wantErr: "duplicate mount point"},
		{name: "bad propagation", binds: []Bind{{Source: "/a", Destination: "/x", Propagation: "everywhere"}}, wantErr: "propagation"},
		{name: "extra relative destination", extra: []specs.Mount{{Destination: "etc/hosts", Type: "bind", Source: "/x"}}, wantErr: "absolute"},
		{name: "extra relative bind source", extra: []specs.Mount{{Destination: "/etc/hosts", Type: "none", Source: "x", Options: []string{"bind"}}}, wantErr: "absolute"},
		{name: "extra duplicate", extra: []specs.Mount{{Destination: "/t", Type: "tmpfs", Source: "tmpfs"}, {Destination: "/t", Type: "tmpfs", Source: "tmpfs"}}, wantErr: "duplicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := baseOpts()
			o.Binds, o.ExtraMounts = tt.binds, tt.extra
			s, err := Generate(o)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrInvalid with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := Validate(s); err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}

func TestResources(t *testing.T) {
	p := func(v int64) *int64 { return &v }
	tests := []struct {
		name    string
		mod     func(*Options)
		check   func(t *testing.T, r *specs.LinuxResources)
		wantErr string
	}{
		{name: "memory default swap", mod: func(o *Options) { o.Memory = 64 << 20 }, check: func(t *testing.T, r *specs.LinuxResources) {
			if *r.Memory.Limit != 64<<20 || *r.Memory.Swap != 128<<20 {
				t.Errorf("memory %d swap %d", *r.Memory.Limit, *r.Memory.Swap)
			}
		}},
		{name: "memory unlimited swap", mod: func(o *Options) { o.Memory, o.MemorySwap = 64<<20, -1 }, check: func(t *testing.T, r *specs.LinuxResources) {
			if *r.Memory.Swap != -1 {
				t.Errorf("swap %d", *r.Memory.Swap)
			}
		}},
		{name: "memory explicit swap", mod: func(o *Options) { o.Memory, o.MemorySwap = 64<<20, 100<<20 }, check: func(t *testing.T, r *specs.LinuxResources) {
			if *r.Memory.Swap != 100<<20 {
				t.Errorf("swap %d", *r.Memory.Swap)
			}
		}},
		{name: "cpus", mod: func(o *Options) { o.NanoCPUs = 1_500_000_000 }, check: func(t *testing.T, r *specs.LinuxResources) {
			if *r.CPU.Period != 100000 || *r.CPU.Quota != 150000 {
				t.Errorf("period %d quota %d", *r.CPU.Period, *r.CPU.Quota)
			}
		}},
		{name: "shares clamped", mod: func(o *Options) { o.CPUShares = 1 }, check: func(t *testing.T, r *specs.LinuxResources) {
			if *r.CPU.Shares != 2 || r.CPU.Quota != nil {
				t.Errorf("shares %d", *r.CPU.Shares)
			}
		}},
		{name: "shares", mod: func(o *Options) { o.CPUShares = 512 }, check: func(t *testing.T, r *specs.LinuxResources) {
			if *r.CPU.Shares != 512 {
				t.Errorf("shares %d", *r.CPU.Shares)
			}
		}},
		{name: "pids", mod: func(o *Options) { o.PidsLimit = p(100) }, check: func(t *testing.T, r *specs.LinuxResources) {
			if *r.Pids.Limit != 100 {
				t.Errorf("pids %d", *r.Pids.Limit)
			}
		}},
		{name: "pids zero is none", mod: func(o *Options) { o.PidsLimit = p(0) }, check: func(t *testing.T, r *specs.LinuxResources) {
			if r.Pids != nil {
				t.Errorf("pids %+v", r.Pids)
			}
		}},
		{name: "negative memory", mod: func(o *Options) { o.Memory = -5 }, wantErr: "negative"},
		{name: "tiny memory", mod: func(o *Options) { o.Memory = 1024 }, wantErr: "6MB"},
		{name: "swap below memory", mod: func(o *Options) { o.Memory, o.MemorySwap = 64<<20, 32<<20 }, wantErr: "larger than memory"},
		{name: "swap without memory", mod: func(o *Options) { o.MemorySwap = 64 << 20 }, wantErr: "memory limit must be set"},
		{name: "swap below -1", mod: func(o *Options) { o.MemorySwap = -2 }, wantErr: "swap"},
		{name: "negative cpus", mod: func(o *Options) { o.NanoCPUs = -1 }, wantErr: "negative"},
		{name: "tiny cpus", mod: func(o *Options) { o.NanoCPUs = 1000 }, wantErr: "0.01"},
		{name: "negative shares", mod: func(o *Options) { o.CPUShares = -1 }, wantErr: "negative"},
		{name: "negative shm", mod: func(o *Options) { o.ShmSize = -1 }, wantErr: "shm"},
		{name: "cgroups path escape", mod: func(o *Options) { o.CgroupsPath = "/berth/../../x" }, wantErr: "cgroups path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := baseOpts()
			tt.mod(&o)
			s, err := Generate(o)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrInvalid with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s.Linux.Resources)
		})
	}
}

func TestProcessFor(t *testing.T) {
	o := baseOpts()
	o.Image.Env = []string{"A=1"}
	o.Image.WorkingDir = "/app"
	base := mustGenerate(t, o)
	aa := "docker-default"
	base.Process.ApparmorProfile = aa

	p, err := ProcessFor(base, testRootfs, []string{"ls", "-l"}, []string{"A=2", "B=3"}, "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateProcess(p); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Args, []string{"ls", "-l"}) || p.Cwd != "/app" || p.Terminal || p.User.UID != 0 {
		t.Errorf("process %+v", p)
	}
	if !slices.Equal(p.Env, []string{"PATH=" + DefaultPathEnv, "HOSTNAME=0123456789ab", "A=2", "HOME=/root", "B=3"}) {
		t.Errorf("env %q", p.Env)
	}
	if !slices.Equal(p.Capabilities.Effective, DefaultCapabilities()) || !slices.Equal(p.Rlimits, base.Process.Rlimits) ||
		!p.NoNewPrivileges || p.ApparmorProfile != aa {
		t.Errorf("security settings not copied: %+v", p)
	}
	// Mutating the exec process must not touch base.
	p.Env[0] = "X=y"
	p.Capabilities.Bounding[0] = "CAP_BPF"
	if base.Process.Env[0] == "X=y" || base.Process.Capabilities.Bounding[0] == "CAP_BPF" {
		t.Error("ProcessFor shares storage with base")
	}

	p, err = ProcessFor(base, testRootfs, []string{"sh"}, nil, "alice", "/tmp", true)
	if err != nil {
		t.Fatal(err)
	}
	if p.User.UID != 1000 || !slices.Equal(p.User.AdditionalGids, []uint32{1000, 10, 29}) || p.Cwd != "/tmp" || !p.Terminal {
		t.Errorf("user exec %+v", p)
	}
	if v, _ := getEnv(p.Env, "TERM"); v != "xterm" {
		t.Errorf("TERM = %q", v)
	}
	if v, _ := getEnv(p.Env, "HOME"); v != "/home/alice" {
		t.Errorf("HOME = %q", v)
	}
	if len(p.Capabilities.Effective) != 0 || len(p.Capabilities.Bounding) != 14 {
		t.Errorf("non-root exec caps %+v", p.Capabilities)
	}

	// TERM already set by the user is kept.
	p, err = ProcessFor(base, testRootfs, []string{"sh"}, []string{"TERM=dumb"}, "", "", true)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := getEnv(p.Env, "TERM"); v != "dumb" {
		t.Errorf("TERM = %q", v)
	}

	for name, f := range map[string]func() error{
		"no cmd": func() error { _, err := ProcessFor(base, testRootfs, nil, nil, "", "", false); return err },
		"bad user": func() error {
			_, err := ProcessFor(base, testRootfs, []string{"x"}, nil, "nobody", "", false)
			return err
		},
		"relative cwd": func() error { _, err := ProcessFor(base, testRootfs, []string{"x"}, nil, "", "tmp", false); return err },
		"bad env": func() error {
			_, err := ProcessFor(base, testRootfs, []string{"x"}, []string{"=1"}, "", "", false)
			return err
		},
		"nil base": func() error { _, err := ProcessFor(nil, testRootfs, []string{"x"}, nil, "", "", false); return err },
	} {
		if err := f(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestValidate(t *testing.T) {
	good := func() *specs.Spec { return mustGenerate(t, baseOpts()) }
	tests := map[string]func(s *specs.Spec){
		"nil process":    func(s *specs.Spec) { s.Process = nil },
		"empty args":     func(s *specs.Spec) { s.Process.Args = nil },
		"relative cwd":   func(s *specs.Spec) { s.Process.Cwd = "x" },
		"no root":        func(s *specs.Spec) { s.Root = nil },
		"no version":     func(s *specs.Spec) { s.Version = "" },
		"relative mount": func(s *specs.Spec) { s.Mounts[0].Destination = "proc" },
		"relative bind src": func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Type: "bind", Source: "y"})
		},
		"dup namespace": func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "pid"})
		},
		"bad namespace": func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "nope"})
		},
		"hostname no uts": func(s *specs.Spec) {
			s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.UTSNamespace })
		},
	}
	for name, mod := range tests {
		s := good()
		mod(s)
		if err := Validate(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}
