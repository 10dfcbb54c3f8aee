package cgroups

// Pure functions that turn /proc/self/cgroup and /proc/self/mountinfo
// contents into the directories a Manager works on. They build on every OS
// so that they can be unit-tested anywhere with synthetic bytes.

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// v1Controllers are the cgroup v1 hierarchies berth manages, in the order
// in which it creates and joins them. name=systemd and the others are left
// alone.
var v1Controllers = []string{"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"}

// v2Controllers are the cgroup v2 controllers berth enables for the cgroups
// it creates, when the parent offers them.
var v2Controllers = []string{"cpu", "cpuset", "io", "memory", "pids"}

// procCgroup is the parsed content of /proc/<pid>/cgroup.
type procCgroup struct {
	// V1 maps each v1 controller (and "name=..." hierarchy) to the
	// process's cgroup path in that hierarchy.
	V1 map[string]string
	// Unified is the process's path in the cgroup v2 hierarchy (the "0::"
	// line); HasUnified tells whether that line was present.
	Unified    string
	HasUnified bool
}

// parseProcCgroup parses /proc/<pid>/cgroup: lines of
// "hierarchy-ID:controller-list:path". A v1 line with several controllers
// (e.g. "cpu,cpuacct") yields one entry per controller.
func parseProcCgroup(data []byte) (procCgroup, error) {
	pc := procCgroup{V1: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		id, rest, ok1 := strings.Cut(line, ":")
		ctrls, p, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || id == "" || !strings.HasPrefix(p, "/") {
			return procCgroup{}, fmt.Errorf("cgroups: malformed /proc/self/cgroup line %q", line)
		}
		if id == "0" && ctrls == "" {
			pc.Unified, pc.HasUnified = p, true
			continue
		}
		for _, c := range strings.Split(ctrls, ",") {
			if c != "" {
				pc.V1[c] = p
			}
		}
	}
	if err := sc.Err(); err != nil {
		return procCgroup{}, fmt.Errorf("cgroups: read /proc/self/cgroup: %w", err)
	}
	return pc, nil
}

// cgroupRoot is the default mount point of the cgroup filesystems.
const cgroupRoot = "/sys/fs/cgroup"

// modeFromMounts decides the cgroup layout from the mount table: V2 when
// /sys/fs/cgroup itself is a cgroup2 filesystem; V1 when any cgroup v1
// hierarchy is mounted (a hybrid layout's cgroup2 at /sys/fs/cgroup/unified
// does not count: berth does not use it); Unavailable otherwise.
func modeFromMounts(mounts []*mountinfo.Info) Mode {
	v1 := false
	for _, m := range mounts {
		switch m.FSType {
		case "cgroup2":
			if path.Clean(m.Mountpoint) == cgroupRoot {
				return V2
			}
		case "cgroup":
			for _, c := range v1Controllers {
				if hasOption(m.VFSOptions, c) || hasOption(m.Options, c) {
					v1 = true
				}
			}
		}
	}
	if v1 {
		return V1
	}
	return Unavailable
}

// hasOption reports whether the comma-separated option list opts contains o.
func hasOption(opts, o string) bool {
	for _, x := range strings.Split(opts, ",") {
		if x == o {
			return true
		}
	}
	return false
}

// mountDir is where one hierarchy is mounted: Mountpoint shows the
// hierarchy's directory Root (Root is "/" unless only a subtree is mounted,
// as in some containers).
type mountDir struct {
	Mountpoint string
	Root       string
}

// v2Mount finds the cgroup2 mount at /sys/fs/cgroup.
func v2Mount(mounts []*mountinfo.Info) (mountDir, bool) {
	for _, m := range mounts {
		if m.FSType == "cgroup2" && path.Clean(m.Mountpoint) == cgroupRoot {
			return mountDir{Mountpoint: m.Mountpoint, Root: m.Root}, true
		}
	}
	return mountDir{}, false
}

// v1Mounts maps every mounted v1 controller that berth manages to its
// mount. When a controller is mounted more than once, the first mount below
// /sys/fs/cgroup wins, else the first one.
func v1Mounts(mounts []*mountinfo.Info) map[string]mountDir {
	out := map[string]mountDir{}
	preferred := map[string]bool{}
	for _, m := range mounts {
		if m.FSType != "cgroup" {
			continue
		}
		under := strings.HasPrefix(path.Clean(m.Mountpoint)+"/", cgroupRoot+"/")
		for _, c := range v1Controllers {
			if !hasOption(m.VFSOptions, c) && !hasOption(m.Options, c) {
				continue
			}
			if _, ok := out[c]; ok && (preferred[c] || !under) {
				continue
			}
			out[c] = mountDir{Mountpoint: m.Mountpoint, Root: m.Root}
			preferred[c] = under
		}
	}
	return out
}

// controllersToEnable lists the v2Controllers that a cgroup offers
// (avail, its cgroup.controllers) but has not enabled for its children
// (enabled, its cgroup.subtree_control); none when berth may not write
// there (may false).
func controllersToEnable(avail, enabled string, may bool) []string {
	if !may {
		return nil
	}
	have, on := strings.Fields(avail), strings.Fields(enabled)
	var out []string
	for _, c := range v2Controllers {
		if slices.Contains(have, c) && !slices.Contains(on, c) {
			out = append(out, c)
		}
	}
	return out
}

// sortedControllers returns m's keys in v1Controllers order.
func sortedControllers(m map[string]mountDir) []string {
	var out []string
	for _, c := range v1Controllers {
		if _, ok := m[c]; ok {
			out = append(out, c)
		}
	}
	return out
}

// resolvePath turns an OCI cgroupsPath into an absolute cgroup path:
// absolute paths are cleaned and used as is; relative ones are joined to
// own, the calling process's cgroup, and must stay below it. The result may
// be neither own nor one of its ancestors (berth never manages the cgroups
// it lives in), nor the root.
func resolvePath(own, p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("cgroups: empty cgroups path: %w", ErrInvalid)
	}
	var res string
	if strings.HasPrefix(p, "/") {
		res = path.Clean(p)
	} else {
		res = path.Join(own, p)
		if !isBelow(res, own) {
			return "", fmt.Errorf("cgroups: relative path %q leaves the caller's cgroup %s: %w", p, own, ErrInvalid)
		}
	}
	if res == "/" || res == own || isBelow(own, res) {
		return "", fmt.Errorf("cgroups: path %q resolves to %s, the caller's cgroup or one of its ancestors: %w", p, res, ErrInvalid)
	}
	return res, nil
}

// isBelow reports whether cgroup path p is strictly below dir.
func isBelow(p, dir string) bool {
	if dir == "/" {
		return p != "/"
	}
	return strings.HasPrefix(p, dir+"/")
}

// hostDir is the directory of cgroup path cg in a hierarchy mounted as md.
func hostDir(md mountDir, cg string) (string, error) {
	root := path.Clean(md.Root)
	rel := cg
	if root != "/" {
		if cg != root && !isBelow(cg, root) {
			return "", fmt.Errorf("cgroups: cgroup %s is outside the mounted subtree %s at %s: %w", cg, root, md.Mountpoint, ErrInvalid)
		}
		rel = strings.TrimPrefix(cg, root)
	}
	return path.Join(md.Mountpoint, rel), nil
}

// ancestors lists the cgroup paths from "/" down to p's parent.
func ancestors(p string) []string {
	out := []string{"/"}
	parts := strings.Split(strings.Trim(p, "/"), "/")
	cur := ""
	for _, s := range parts[:len(parts)-1] {
		cur += "/" + s
		out = append(out, cur)
	}
	return out
}

// parsePidList parses a cgroup.procs file.
func parsePidList(data []byte) ([]int, error) {
	var out []int
	for _, f := range strings.Fields(string(data)) {
		n, err := parseUint(f)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("cgroups: bad pid %q in cgroup.procs", f)
		}
		out = append(out, int(n))
	}
	return out, nil
}

// uniqueSorted sorts pids and drops duplicates.
func uniqueSorted(pids []int) []int {
	sort.Ints(pids)
	out := pids[:0]
	for i, p := range pids {
		if i == 0 || p != pids[i-1] {
			out = append(out, p)
		}
	}
	return out
}
