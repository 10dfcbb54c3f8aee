package libct

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestMountFlagValues(t *testing.T) {
	pairs := map[string][2]uintptr{
		"RDONLY": {msRdonly, unix.MS_RDONLY}, "NOSUID": {msNosuid, unix.MS_NOSUID}, "NODEV": {msNodev, unix.MS_NODEV},
		"NOEXEC": {msNoexec, unix.MS_NOEXEC}, "SYNCHRONOUS": {msSynchronous, unix.MS_SYNCHRONOUS},
		"REMOUNT": {msRemount, unix.MS_REMOUNT}, "MANDLOCK": {msMandlock, unix.MS_MANDLOCK}, "DIRSYNC": {msDirsync, unix.MS_DIRSYNC},
		"NOATIME": {msNoatime, unix.MS_NOATIME}, "NODIRATIME": {msNodiratime, unix.MS_NODIRATIME}, "BIND": {msBind, unix.MS_BIND},
		"MOVE": {msMove, unix.MS_MOVE}, "REC": {msRec, unix.MS_REC}, "SILENT": {msSilent, unix.MS_SILENT},
		"UNBINDABLE": {msUnbindable, unix.MS_UNBINDABLE}, "PRIVATE": {msPrivate, unix.MS_PRIVATE}, "SLAVE": {msSlave, unix.MS_SLAVE},
		"SHARED": {msShared, unix.MS_SHARED}, "RELATIME": {msRelatime, unix.MS_RELATIME}, "IVERSION": {msIversion, unix.MS_I_VERSION},
		"STRICTATIME": {msStrictatime, unix.MS_STRICTATIME}, "LAZYTIME": {msLazytime, unix.MS_LAZYTIME},
	}
	for name, p := range pairs {
		if p[0] != p[1] {
			t.Errorf("MS_%s: %#x, unix has %#x", name, p[0], p[1])
		}
	}
	for name, p := range map[string][2]uint64{"RDONLY": {attrRdonly, unix.MOUNT_ATTR_RDONLY}, "NOSUID": {attrNosuid, unix.MOUNT_ATTR_NOSUID},
		"NODEV": {attrNodev, unix.MOUNT_ATTR_NODEV}, "NOEXEC": {attrNoexec, unix.MOUNT_ATTR_NOEXEC}} {
		if p[0] != p[1] {
			t.Errorf("MOUNT_ATTR_%s: %#x, unix has %#x", name, p[0], p[1])
		}
	}
	if statfsMountFlags(unix.ST_NOSUID|unix.ST_RELATIME|unix.ST_RDONLY) != msNosuid|msRelatime {
		t.Error("statfsMountFlags")
	}
}

func TestCgroupParsing(t *testing.T) {
	paths := parseProcCgroup(strings.NewReader("9:name=systemd:/\n4:memory:/a/b\n3:cpu,cpuacct:/c\n0::/u\n"))
	want := map[string]string{"name=systemd": "/", "memory": "/a/b", "cpu,cpuacct": "/c", "": "/u"}
	for k, v := range want {
		if paths[k] != v {
			t.Errorf("%q: %q, want %q", k, paths[k], v)
		}
	}
	for _, c := range []struct{ fstype, opts, key string }{
		{"cgroup", "rw,memory", "memory"},
		{"cgroup", "rw,cpu,cpuacct", "cpu,cpuacct"},
		{"cgroup", "rw,xattr,name=systemd", "name=systemd"},
		{"cgroup2", "rw", ""},
	} {
		if k, ok := hierarchyKey(c.fstype, c.opts, paths); !ok || k != c.key {
			t.Errorf("hierarchyKey(%s, %s) = %q, %v", c.fstype, c.opts, k, ok)
		}
	}
	if _, ok := hierarchyKey("cgroup", "rw,pids", paths); ok {
		t.Error("matched a hierarchy we are not in")
	}
}

func TestDeviceList(t *testing.T) {
	uid := uint32(5)
	list := deviceList([]specs.LinuxDevice{{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, UID: &uid}, {Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}}, true)
	if len(list) != len(defaultDevices)+1 {
		t.Fatalf("%d devices", len(list))
	}
	if list[0].path != "/dev/null" || list[0].uid != 5 || list[len(list)-1].path != "/dev/fuse" || list[len(list)-1].mode != 0o666 {
		t.Errorf("list %+v", list)
	}
	if got := deviceList(nil, false); len(got) != 0 {
		t.Errorf("no defaults wanted: %+v", got)
	}
}
