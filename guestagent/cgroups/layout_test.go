package cgroups

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// procCgroupV1 is /proc/self/cgroup from berth's dev machine (v1 hybrid):
// the memory cgroup differs from the others.
const procCgroupV1 = `9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/e7ca3cd005e1389c781cc3451825d628
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
`

// procCgroupV2 is a pure cgroup v2 machine's /proc/self/cgroup.
const procCgroupV2 = "0::/user.slice/user-1000.slice/session-3.scope\n"

// mountsV1 is the cgroup part of the dev machine's mount table.
func mountsV1() []*mountinfo.Info {
	mk := func(mp, fs, opts string) *mountinfo.Info {
		return &mountinfo.Info{Root: "/", Mountpoint: mp, FSType: fs, VFSOptions: opts, Options: "rw,relatime"}
	}
	return []*mountinfo.Info{
		mk("/sys/fs/cgroup", "tmpfs", "rw,mode=755"),
		mk("/sys/fs/cgroup/cpu", "cgroup", "rw,cpu"),
		mk("/sys/fs/cgroup/cpuacct", "cgroup", "rw,cpuacct"),
		mk("/sys/fs/cgroup/cpuset", "cgroup", "rw,cpuset"),
		mk("/sys/fs/cgroup/memory", "cgroup", "rw,memory"),
		mk("/sys/fs/cgroup/devices", "cgroup", "rw,devices"),
		mk("/sys/fs/cgroup/freezer", "cgroup", "rw,freezer"),
		mk("/sys/fs/cgroup/blkio", "cgroup", "rw,blkio"),
		mk("/sys/fs/cgroup/pids", "cgroup", "rw,pids"),
		mk("/sys/fs/cgroup/systemd", "cgroup", "rw,name=systemd"),
		mk("/sys/fs/cgroup/unified", "cgroup2", "rw"),
	}
}

func TestParseProcCgroup(t *testing.T) {
	pc, err := parseProcCgroup([]byte(procCgroupV1))
	if err != nil {
		t.Fatal(err)
	}
	if got := pc.V1["memory"]; got != "/process_api/e7ca3cd005e1389c781cc3451825d628" {
		t.Errorf("memory = %q", got)
	}
	if pc.V1["pids"] != "/" || pc.V1["name=systemd"] != "/" || !pc.HasUnified || pc.Unified != "/" {
		t.Errorf("parsed %+v", pc)
	}

	pc, err = parseProcCgroup([]byte(procCgroupV2))
	if err != nil {
		t.Fatal(err)
	}
	if len(pc.V1) != 0 || pc.Unified != "/user.slice/user-1000.slice/session-3.scope" {
		t.Errorf("parsed %+v", pc)
	}

	pc, err = parseProcCgroup([]byte("3:cpu,cpuacct:/a/b\n2:net_cls,net_prio:/\n"))
	if err != nil {
		t.Fatal(err)
	}
	if pc.V1["cpu"] != "/a/b" || pc.V1["cpuacct"] != "/a/b" || pc.V1["net_prio"] != "/" || pc.HasUnified {
		t.Errorf("parsed %+v", pc)
	}

	for _, bad := range []string{"garbage\n", "1:cpu\n", "1:cpu:relative\n", ":cpu:/\n"} {
		if _, err := parseProcCgroup([]byte(bad)); err == nil {
			t.Errorf("parseProcCgroup(%q) accepted", bad)
		}
	}
}

func TestModeFromMounts(t *testing.T) {
	v2 := []*mountinfo.Info{{Root: "/", Mountpoint: "/sys/fs/cgroup", FSType: "cgroup2"}}
	onlyHybrid := []*mountinfo.Info{{Root: "/", Mountpoint: "/sys/fs/cgroup/unified", FSType: "cgroup2"}}
	for _, tc := range []struct {
		name   string
		mounts []*mountinfo.Info
		want   Mode
	}{
		{"v1 hybrid", mountsV1(), V1},
		{"v2", v2, V2},
		{"v2 trailing slash", []*mountinfo.Info{{Mountpoint: "/sys/fs/cgroup/", FSType: "cgroup2"}}, V2},
		{"only a hybrid cgroup2", onlyHybrid, Unavailable},
		{"only name=systemd", []*mountinfo.Info{{Mountpoint: "/sys/fs/cgroup/systemd", FSType: "cgroup", VFSOptions: "rw,name=systemd"}}, Unavailable},
		{"nothing", nil, Unavailable},
	} {
		if got := modeFromMounts(tc.mounts); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestV1Mounts(t *testing.T) {
	got := v1Mounts(mountsV1())
	if want := v1Controllers; !slices.Equal(sortedControllers(got), want) {
		t.Errorf("controllers %v, want %v", sortedControllers(got), want)
	}
	if got["memory"].Mountpoint != "/sys/fs/cgroup/memory" {
		t.Errorf("memory at %+v", got["memory"])
	}
	if _, ok := got["name=systemd"]; ok {
		t.Error("name=systemd must not be managed")
	}

	// Co-mounted controllers; a second mount elsewhere does not win over
	// the one below /sys/fs/cgroup.
	combined := []*mountinfo.Info{
		{Root: "/", Mountpoint: "/sys/fs/cgroup/cpu,cpuacct", FSType: "cgroup", VFSOptions: "rw,cpu,cpuacct"},
		{Root: "/", Mountpoint: "/mnt/cpu", FSType: "cgroup", VFSOptions: "rw,cpu,cpuacct"},
		{Root: "/x", Mountpoint: "/other/pids", FSType: "cgroup", VFSOptions: "rw,pids"},
	}
	got = v1Mounts(combined)
	if got["cpu"].Mountpoint != "/sys/fs/cgroup/cpu,cpuacct" || got["cpuacct"].Mountpoint != "/sys/fs/cgroup/cpu,cpuacct" {
		t.Errorf("combined: %+v", got)
	}
	if got["pids"] != (mountDir{Mountpoint: "/other/pids", Root: "/x"}) {
		t.Errorf("pids: %+v", got["pids"])
	}
	if len(got) != 3 {
		t.Errorf("got %v", slices.Sorted(maps.Keys(got)))
	}

	md, ok := v2Mount([]*mountinfo.Info{{Root: "/", Mountpoint: "/sys/fs/cgroup", FSType: "cgroup2"}})
	if !ok || md.Mountpoint != "/sys/fs/cgroup" {
		t.Errorf("v2Mount = %+v %v", md, ok)
	}
	if _, ok := v2Mount(mountsV1()); ok {
		t.Error("v2Mount found the hybrid mount")
	}
}

func TestResolvePath(t *testing.T) {
	own := "/process_api/e7ca"
	for _, tc := range []struct {
		own, in, want string
	}{
		{own, "berth/c1", "/process_api/e7ca/berth/c1"},
		{own, "c1/", "/process_api/e7ca/c1"},
		{own, "a/../c1", "/process_api/e7ca/c1"},
		{"/", "berth/c1", "/berth/c1"},
		{own, "/berth/c1", "/berth/c1"},
		{own, "/berth//c1/", "/berth/c1"},
		{own, "/process_api/e7ca/x", "/process_api/e7ca/x"},
	} {
		got, err := resolvePath(tc.own, tc.in)
		if err != nil || got != tc.want {
			t.Errorf("resolvePath(%q, %q) = %q, %v; want %q", tc.own, tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ own, in string }{
		{own, ""},
		{own, "."},
		{own, ".."},
		{own, "../sibling"},
		{own, "a/../../b"},
		{own, "/"},
		{own, "/process_api"},
		{own, "/process_api/e7ca"},
		{"/", "/"},
	} {
		if got, err := resolvePath(tc.own, tc.in); !errors.Is(err, ErrInvalid) {
			t.Errorf("resolvePath(%q, %q) = %q, %v; want ErrInvalid", tc.own, tc.in, got, err)
		}
	}
}

func TestHostDirAndAncestors(t *testing.T) {
	d, err := hostDir(mountDir{Mountpoint: "/sys/fs/cgroup/memory", Root: "/"}, "/process_api/x/c1")
	if err != nil || d != "/sys/fs/cgroup/memory/process_api/x/c1" {
		t.Errorf("hostDir = %q, %v", d, err)
	}
	// A container that sees only its own subtree mounted.
	sub := mountDir{Mountpoint: "/sys/fs/cgroup", Root: "/docker/abc"}
	if d, err := hostDir(sub, "/docker/abc/c1"); err != nil || d != "/sys/fs/cgroup/c1" {
		t.Errorf("hostDir = %q, %v", d, err)
	}
	if d, err := hostDir(sub, "/docker/abc"); err != nil || d != "/sys/fs/cgroup" {
		t.Errorf("hostDir = %q, %v", d, err)
	}
	if _, err := hostDir(sub, "/docker/abcd/c1"); !errors.Is(err, ErrInvalid) {
		t.Errorf("hostDir outside the subtree: %v", err)
	}

	if got := ancestors("/a/b/c"); !slices.Equal(got, []string{"/", "/a", "/a/b"}) {
		t.Errorf("ancestors = %v", got)
	}
	if got := ancestors("/a"); !slices.Equal(got, []string{"/"}) {
		t.Errorf("ancestors = %v", got)
	}
	if !isBelow("/a/b", "/a") || isBelow("/ab", "/a") || isBelow("/a", "/a") || !isBelow("/a", "/") || isBelow("/", "/") {
		t.Error("isBelow")
	}
}

func TestParsers(t *testing.T) {
	for in, want := range map[string]uint64{"0": 0, "42\n": 42, "max": 0, " max\n": 0, "18446744073709551615": 1<<64 - 1} {
		if got, err := parseUint(in); err != nil || got != want {
			t.Errorf("parseUint(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "-1", "12k", "max max"} {
		if _, err := parseUint(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("parseUint(%q) = %v", bad, err)
		}
	}
	for in, want := range map[string]uint64{"max": 0, "9223372036854771712": 0, "33554432": 32 << 20, "10": 10} {
		if got, err := parseLimit(in); err != nil || got != want {
			t.Errorf("parseLimit(%q) = %d, %v", in, got, err)
		}
	}

	oom := parseKeyed([]byte("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"))
	if oom["oom_kill"] != 3 || oom["under_oom"] != 0 || len(oom) != 3 {
		t.Errorf("oom_control: %v", oom)
	}
	ev := parseKeyed([]byte("low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n"))
	if ev["oom_kill"] != 1 || ev["max"] != 12 {
		t.Errorf("memory.events: %v", ev)
	}
	cs := parseKeyed([]byte("usage_usec 1234\nuser_usec 1000\nsystem_usec 234\nweird line here\nbad x\n"))
	if cs["usage_usec"] != 1234 || len(cs) != 3 {
		t.Errorf("cpu.stat: %v", cs)
	}

	pids, err := parsePidList([]byte("12\n7\n12\n"))
	if err != nil || !slices.Equal(uniqueSorted(pids), []int{7, 12}) {
		t.Errorf("parsePidList = %v, %v", pids, err)
	}
	if pids, err := parsePidList(nil); err != nil || len(pids) != 0 {
		t.Errorf("empty: %v, %v", pids, err)
	}
	if _, err := parsePidList([]byte("1\nx\n")); err == nil {
		t.Error("bad pid accepted")
	}
}

func TestSharesToWeight(t *testing.T) {
	for shares, want := range map[uint64]uint64{
		0:       0,
		1:       1, // clamped to 2
		2:       1,
		1024:    39, // docker's default shares → the usual weight
		262144:  10000,
		1 << 40: 10000,
	} {
		if got := sharesToWeight(shares); got != want {
			t.Errorf("sharesToWeight(%d) = %d, want %d", shares, got, want)
		}
	}
}

func TestCPUMax(t *testing.T) {
	for _, tc := range []struct {
		quota  *int64
		period *uint64
		want   string
		ok     bool
	}{
		{nil, nil, "", false},
		{nil, ptr(uint64(0)), "", false},
		{ptr(int64(50000)), ptr(uint64(100000)), "50000 100000", true},
		{ptr(int64(50000)), nil, "50000", true},
		{ptr(int64(-1)), ptr(uint64(100000)), "max 100000", true},
		{ptr(int64(0)), nil, "max", true},
		{nil, ptr(uint64(20000)), "max 20000", true},
	} {
		got, ok := cpuMax(tc.quota, tc.period)
		if got != tc.want || ok != tc.ok {
			t.Errorf("cpuMax(%v, %v) = %q, %v; want %q, %v", deref(tc.quota), deref(tc.period), got, ok, tc.want, tc.ok)
		}
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestSwapV2(t *testing.T) {
	for _, tc := range []struct {
		swap, limit *int64
		want        string
		ok          bool
		bad         bool
	}{
		{nil, nil, "", false, false},
		{nil, ptr(int64(100)), "", false, false},
		{nil, ptr(int64(-1)), "max", true, false},
		{ptr(int64(0)), ptr(int64(100)), "", false, false},
		{ptr(int64(-1)), ptr(int64(100)), "max", true, false},
		{ptr(int64(300)), ptr(int64(100)), "200", true, false},
		{ptr(int64(100)), ptr(int64(100)), "0", true, false},
		{ptr(int64(50)), ptr(int64(100)), "", false, true},
		{ptr(int64(50)), nil, "", false, true},
		{ptr(int64(50)), ptr(int64(-1)), "", false, true},
	} {
		got, ok, err := swapV2(tc.swap, tc.limit)
		if got != tc.want || ok != tc.ok || (err != nil) != tc.bad || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("swapV2(%v, %v) = %q, %v, %v", deref(tc.swap), deref(tc.limit), got, ok, err)
		}
	}
}

func fullResources() *specs.LinuxResources {
	return &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr(int64(32 << 20)), Swap: ptr(int64(64 << 20)), Reservation: ptr(int64(16 << 20))},
		CPU: &specs.LinuxCPU{Shares: ptr(uint64(512)), Quota: ptr(int64(50000)), Period: ptr(uint64(100000)),
			Cpus: "0-1", Mems: "0"},
		Pids: &specs.LinuxPids{Limit: ptr(int64(10))},
		Devices: []specs.LinuxDeviceCgroup{
			{Allow: false, Access: "rwm"},
			{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rwm"},
			{Allow: true, Type: "c", Major: ptr(int64(136)), Access: "rw"},
			{Allow: false, Type: "b", Major: ptr(int64(8)), Minor: ptr(int64(0)), Access: "m"},
		},
	}
}

func TestPlanV2(t *testing.T) {
	got, err := planV2(fullResources())
	if err != nil {
		t.Fatal(err)
	}
	want := []fileWrite{
		{"memory.low", "16777216"},
		{"memory.max", "33554432"},
		{"memory.swap.max", "33554432"},
		{"cpu.weight", "20"},
		{"cpu.max", "50000 100000"},
		{"cpuset.cpus", "0-1"},
		{"cpuset.mems", "0"},
		{"pids.max", "10"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("planV2 =\n%v\nwant\n%v", got, want)
	}
	for _, res := range []*specs.LinuxResources{nil, {}} {
		if got, err := planV2(res); err != nil || len(got) != 0 {
			t.Errorf("planV2(%v) = %v, %v", res, got, err)
		}
	}
	got, err = planV2(&specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr(int64(-1))},
		Pids:   &specs.LinuxPids{Limit: ptr(int64(-1))},
	})
	if want := []fileWrite{{"memory.max", "max"}, {"memory.swap.max", "max"}, {"pids.max", "max"}}; err != nil || !slices.Equal(got, want) {
		t.Errorf("unlimited: %v, %v", got, err)
	}
	if _, err := planV2(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(100)), Swap: ptr(int64(50))}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("swap below limit: %v", err)
	}
}

func TestPlanV1(t *testing.T) {
	got, err := planV1(fullResources())
	if err != nil {
		t.Fatal(err)
	}
	want := v1Plan{
		"memory": {
			{"memory.soft_limit_in_bytes", "16777216"},
			{"memory.limit_in_bytes", "33554432"},
			{"memory.memsw.limit_in_bytes", "67108864"},
		},
		"cpu": {
			{"cpu.shares", "512"},
			{"cpu.cfs_period_us", "100000"},
			{"cpu.cfs_quota_us", "50000"},
		},
		"cpuset": {{"cpuset.cpus", "0-1"}, {"cpuset.mems", "0"}},
		"pids":   {{"pids.max", "10"}},
		"devices": {
			{"devices.deny", "a"},
			{"devices.deny", "a"},
			{"devices.allow", "c 1:3 rwm"},
			{"devices.allow", "c 136:* rw"},
			{"devices.deny", "b 8:0 m"},
		},
	}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("planV1 =\n%v\nwant\n%v", got, want)
	}
	got, err = planV1(&specs.LinuxResources{
		CPU:  &specs.LinuxCPU{Quota: ptr(int64(-1))},
		Pids: &specs.LinuxPids{Limit: ptr(int64(0))},
	})
	want = v1Plan{"cpu": {{"cpu.cfs_quota_us", "-1"}}, "pids": {{"pids.max", "max"}}}
	if err != nil || !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("unlimited: %v, %v", got, err)
	}
	if _, err := planV1(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(100)), Swap: ptr(int64(50))}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("swap below limit: %v", err)
	}
	if _, err := planV1(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "x"}}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad device type: %v", err)
	}
	if _, err := planV1(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Access: "rwx"}}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad device access: %v", err)
	}
}

func TestControllersToEnable(t *testing.T) {
	got := controllersToEnable("cpuset cpu io memory hugetlb pids rdma misc", "cpu memory", true)
	if want := []string{"cpuset", "io", "pids"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := controllersToEnable("cpu memory", "", false); got != nil {
		t.Errorf("may=false: %v", got)
	}
	if got := controllersToEnable("hugetlb", "", true); got != nil {
		t.Errorf("hybrid root: %v", got)
	}
}

func TestModeString(t *testing.T) {
	if V1.String() != "v1" || V2.String() != "v2" || Unavailable.String() != "unavailable" || Mode(7).String() != "Mode(7)" {
		t.Error("Mode.String")
	}
}

func TestNewEmptyPath(t *testing.T) {
	if _, err := New(""); err == nil {
		t.Fatal("New(\"\") succeeded")
	}
}

func ptr[T any](v T) *T { return &v }

func TestPlanV1MemoryExtrasAndBlkio(t *testing.T) {
	swappiness, weight := uint64(10), uint16(500)
	off := true
	rate := []specs.LinuxThrottleDevice{{Rate: 1048576}}
	rate[0].Major, rate[0].Minor = 8, 0
	p, err := planV1(&specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Swappiness: &swappiness, DisableOOMKiller: &off},
		BlockIO: &specs.LinuxBlockIO{Weight: &weight, ThrottleReadBpsDevice: rate},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]fileWrite{
		"memory": {{"memory.swappiness", "10"}, {"memory.oom_control", "1"}},
		"blkio":  {{"blkio.weight", "500"}, {"blkio.throttle.read_bps_device", "8:0 1048576"}},
	}
	for c, ws := range want {
		if fmt.Sprint(p[c]) != fmt.Sprint(ws) {
			t.Errorf("%s: %v, want %v", c, p[c], ws)
		}
	}
	tooMuch, tooLight := uint64(101), uint16(5)
	if _, err := planV1(&specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: &tooMuch}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("swappiness 101: %v", err)
	}
	if _, err := planV1(&specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: &tooLight}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("blkio weight 5: %v", err)
	}
}
