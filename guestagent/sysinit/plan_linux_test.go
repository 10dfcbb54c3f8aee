package sysinit

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/vmimage/instance"
)

func TestBaseMountsOrder(t *testing.T) {
	ms := BaseMounts()
	seen := map[string]bool{"/": true}
	for _, m := range ms {
		parent := m.Target[:strings.LastIndex(m.Target, "/")]
		if parent == "" {
			parent = "/"
		}
		// Every mount's parent is the root or mounted before it (only mount points we create are children).
		if !seen[parent] && parent != "/sys/fs" {
			t.Errorf("%s mounted before its parent %s", m.Target, parent)
		}
		seen[m.Target] = true
		if m.Flags&unix.MS_NOSUID == 0 {
			t.Errorf("%s: not nosuid", m.Target)
		}
	}
	for _, want := range []string{"/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/run", "/sys/fs/cgroup"} {
		if !seen[want] {
			t.Errorf("no mount on %s", want)
		}
	}
	if i, j := slices.IndexFunc(ms, func(m Mount) bool { return m.Target == "/sys" }), slices.IndexFunc(ms, func(m Mount) bool { return m.Target == "/sys/fs/cgroup" }); i > j {
		t.Error("cgroup2 before sysfs")
	}
	if c := ms[slices.IndexFunc(ms, func(m Mount) bool { return m.Target == "/sys/fs/cgroup" })]; c.FSType != "cgroup2" {
		t.Errorf("cgroup mount %v", c)
	}
}

func TestDataAndShareMounts(t *testing.T) {
	if _, ok := DataMount(instance.Config{}); ok {
		t.Error("data mount without a disk")
	}
	m, ok := DataMount(instance.Config{DataDisk: "/dev/vda"})
	if !ok || m.Source != "/dev/vda" || m.Target != DataDir || m.FSType != "ext4" {
		t.Errorf("data mount %v", m)
	}
	ms, err := ShareMounts([]instance.Share{
		{Tag: "share0", Type: "9p", GuestPath: "/home/me/"},
		{Tag: "share1", Type: "virtiofs", GuestPath: "/srv", ReadOnly: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{Source: "share0", Target: "/home/me", FSType: "9p", Flags: nosuidNodev, Data: NineP},
		{Source: "share1", Target: "/srv", FSType: "virtiofs", Flags: nosuidNodev | unix.MS_RDONLY},
	}
	if !reflect.DeepEqual(ms, want) {
		t.Errorf("share mounts\n got %v\nwant %v", ms, want)
	}
	for _, bad := range []instance.Share{{Tag: "a", Type: "9p", GuestPath: "rel"}, {Tag: "a", Type: "9p", GuestPath: "/"}, {Tag: "a", Type: "nfs", GuestPath: "/x"}} {
		if _, err := ShareMounts([]instance.Share{bad}); err == nil {
			t.Errorf("share %+v accepted", bad)
		}
	}
}

func TestUnmountOrder(t *testing.T) {
	data, _ := DataMount(instance.Config{DataDisk: "/dev/vda"})
	shares, _ := ShareMounts([]instance.Share{{Tag: "s0", Type: "9p", GuestPath: "/a"}, {Tag: "s1", Type: "9p", GuestPath: "/b"}})
	mounted := append(append(BaseMounts(), data), shares...)
	if got, want := UnmountOrder(mounted), []string{"/b", "/a", DataDir}; !slices.Equal(got, want) {
		t.Errorf("unmount order %v, want %v", got, want)
	}
}

func TestParseModuleList(t *testing.T) {
	in := "# load order\n/lib/modules/6.1/kernel/a.ko\n\n  kernel/b.ko  \n"
	want := []string{"/lib/modules/6.1/kernel/a.ko", "/lib/modules/6.1/kernel/b.ko"}
	if got := ParseModuleList([]byte(in), "6.1"); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestControllers(t *testing.T) {
	if got := Controllers("cpuset cpu io memory pids\n"); got != "+cpuset +cpu +io +memory +pids" {
		t.Errorf("got %q", got)
	}
	if Controllers("\n") != "" {
		t.Error("controllers from nothing")
	}
}

func TestPlanNetwork(t *testing.T) {
	p, err := PlanNetwork(instance.Network{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Interface != "eth0" || p.Address != UserNetAddress || p.Gateway != UserNetGateway || !slices.Equal(p.DNS, []netip.Addr{UserNetDNS}) {
		t.Errorf("defaults %+v", p)
	}
	if got := string(ResolvConf(p)); got != "nameserver 10.0.2.3\n" {
		t.Errorf("resolv.conf %q", got)
	}
	p, err = PlanNetwork(instance.Network{Interface: "enp0", Address: "192.168.5.15/24", Gateway: "192.168.5.2", DNS: []string{"1.1.1.1", "9.9.9.9"}, MTU: 1400})
	if err != nil || p.Address.String() != "192.168.5.15/24" || p.MTU != 1400 || len(p.DNS) != 2 {
		t.Errorf("custom %+v %v", p, err)
	}
	for name, n := range map[string]instance.Network{
		"bad address":     {Address: "10.0.2.15"},
		"bad gateway":     {Gateway: "x"},
		"gateway outside": {Gateway: "10.0.3.2"},
		"bad dns":         {DNS: []string{"dns.example"}},
		"tiny mtu":        {MTU: 100},
	} {
		if _, err := PlanNetwork(n); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestHostnameAndHosts(t *testing.T) {
	if Hostname(instance.Config{}) != "berth" || Hostname(instance.Config{Name: "dev"}) != "dev" {
		t.Error("hostname")
	}
	if h := string(HostsFile("dev")); !strings.Contains(h, "127.0.0.1\tlocalhost\n") || !strings.Contains(h, "\tdev\n") {
		t.Errorf("hosts %q", h)
	}
}

func TestEngineArgv(t *testing.T) {
	got := EngineArgv("/init", instance.Config{Agent: []string{"--debug"}})
	want := []string{"/init", "--debug", "serve", "--preload", "/etc/berth/demo-image.tar", "--socket", "/run/berth/docker.sock", "--root", "/var/lib/berth",
		"--run-root", "/run/berth", "--ssh-listen", "tcp:0.0.0.0:22", "--ssh-host-key", "/etc/berth/ssh_host_key",
		"--ssh-authorized-keys", "/etc/berth/authorized_keys", "--bridge",
		"--wait-network", "/run/berth-network.done", "--wait-boot", "/run/berth-boot.done"}
	if !slices.Equal(got, want) {
		t.Errorf("argv\n got %q\nwant %q", got, want)
	}
}

func TestHasExtSuperblock(t *testing.T) {
	b := make([]byte, 2048)
	if HasExtSuperblock(b) || HasExtSuperblock(b[:100]) {
		t.Error("empty disk has a superblock")
	}
	b[1080], b[1081] = 0x53, 0xEF
	if !HasExtSuperblock(b) {
		t.Error("ext magic not found")
	}
}

func TestParseCommand(t *testing.T) {
	if c, err := ParseCommand("poweroff"); err != nil || c.Op != "poweroff" {
		t.Errorf("poweroff: %+v %v", c, err)
	}
	if c, err := ParseCommand("time 1700000000123456789\r"); err != nil || c.Op != "time" || c.UnixNano != 1700000000123456789 {
		t.Errorf("time: %+v %v", c, err)
	}
	for _, bad := range []string{"", "reboot", "time", "time x", "time -5", "poweroff now"} {
		if _, err := ParseCommand(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSubmounts(t *testing.T) {
	mi := `22 1 0:20 / /proc rw,nosuid - proc proc rw
30 1 254:0 / /var/lib/berth rw,noatime - ext4 /dev/vda rw
31 1 0:40 / /home/me rw - 9p share0 rw
40 30 0:50 / /var/lib/berth/containers/abc/rootfs rw - overlay overlay rw,lowerdir=x
41 40 0:51 / /var/lib/berth/containers/abc/rootfs/dev/shm rw - tmpfs shm rw
42 1 0:52 / /var/lib/berthx rw - tmpfs t rw
43 31 0:53 / /home/me/with\040space rw - tmpfs t rw
`
	got := Submounts([]byte(mi), []string{"/home/me", "/var/lib/berth"})
	want := []string{"/home/me/with space", "/var/lib/berth/containers/abc/rootfs/dev/shm", "/var/lib/berth/containers/abc/rootfs"}
	if !slices.Equal(got, want) {
		t.Errorf("submounts\n got %q\nwant %q", got, want)
	}
	if unescapeMountinfo(`a\134b\0`) != `a\b\0` {
		t.Errorf("unescape: %q", unescapeMountinfo(`a\134b\0`))
	}
}

func TestGrowBlocks(t *testing.T) {
	const g = 1 << 30
	// A fresh 1 GiB ext4: statfs reports a little less than the device.
	if _, ok := GrowBlocks(g, 4096, 253_000); ok {
		t.Error("an unchanged disk would be resized")
	}
	if b, ok := GrowBlocks(2*g, 4096, 253_000); !ok || b != 2*g/4096 {
		t.Errorf("grown disk: %d %v", b, ok)
	}
	if _, ok := GrowBlocks(g, 0, 0); ok {
		t.Error("zero block size")
	}
}

func TestParseProcStatus(t *testing.T) {
	status := func(state, ppid, nspid, cgt, ign string) []byte {
		return []byte("Name:\tx\nState:\t" + state + "\nPPid:\t" + ppid + "\nNSpid:\t" + nspid +
			"\nSigIgn:\t" + ign + "\nSigCgt:\t" + cgt + "\n")
	}
	for name, tc := range map[string]struct {
		b    []byte
		want ProcState
	}{
		"kernel thread":       {status("S (sleeping)", "2", "57", "0000000000000000", "ffffffffffffffff"), ProcState{Ignore: true}},
		"zombie":              {status("Z (zombie)", "1", "90", "0", "0"), ProcState{Ignore: true}},
		"plain process":       {status("S (sleeping)", "1", "90", "0000000000000000", "0000000000000000"), ProcState{}},
		"ignores SIGTERM":     {status("S (sleeping)", "1", "90", "0", "0000000000004000"), ProcState{DeafToTerm: true}},
		"container init":      {status("S (sleeping)", "80", "91 1", "0000000000000000", "0000000000000000"), ProcState{DeafToTerm: true}},
		"init with a handler": {status("S (sleeping)", "80", "91 1", "0000000000004000", "0000000000000000"), ProcState{}},
		"container child":     {status("S (sleeping)", "91", "92 7", "0", "0"), ProcState{}},
	} {
		if got := ParseProcStatus(tc.b); got != tc.want {
			t.Errorf("%s: %+v, want %+v", name, got, tc.want)
		}
	}
}
