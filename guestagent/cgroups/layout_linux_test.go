package cgroups

import (
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
)

// mountinfoV1 is /proc/self/mountinfo of berth's dev machine (abridged):
// v1 controllers plus an empty hybrid cgroup2 at /sys/fs/cgroup/unified.
const mountinfoV1 = `27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

// mountinfoV2 is a cgroup v2 machine (systemd, nsdelegate).
const mountinfoV2 = `24 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
21 24 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
26 21 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`

func parseMountinfo(t *testing.T, s string) []*mountinfo.Info {
	t.Helper()
	m, err := mountinfo.GetMountsFromReader(strings.NewReader(s), nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMountinfoSamples(t *testing.T) {
	v1 := parseMountinfo(t, mountinfoV1)
	if got := modeFromMounts(v1); got != V1 {
		t.Errorf("v1 sample: mode %v", got)
	}
	mounts := v1Mounts(v1)
	if len(mounts) != len(v1Controllers) || mounts["pids"].Mountpoint != "/sys/fs/cgroup/pids" {
		t.Errorf("v1 mounts %+v", mounts)
	}
	pc, err := parseProcCgroup([]byte(procCgroupV1))
	if err != nil {
		t.Fatal(err)
	}
	own := pc.V1["memory"]
	res, err := resolvePath(own, "berth/c1")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := hostDir(mounts["memory"], res)
	if err != nil || dir != "/sys/fs/cgroup/memory/process_api/e7ca3cd005e1389c781cc3451825d628/berth/c1" {
		t.Errorf("memory dir %q, %v", dir, err)
	}

	v2 := parseMountinfo(t, mountinfoV2)
	if got := modeFromMounts(v2); got != V2 {
		t.Errorf("v2 sample: mode %v", got)
	}
	md, ok := v2Mount(v2)
	if !ok || md.Mountpoint != "/sys/fs/cgroup" || md.Root != "/" {
		t.Errorf("v2 mount %+v %v", md, ok)
	}
}
