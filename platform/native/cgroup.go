package native

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/berth-dev/berth/platform"
)

// errNoCgroup: no cgroup hierarchy to track the agent's processes in.
var errNoCgroup = errors.New("native: no cgroup hierarchy to track the agent in")

// cgroupName is the instance's cgroup: its name plus a hash of its directory, so that two berth homes
// never share one.
func cgroupName(inst platform.Instance) string {
	h := sha256.Sum256([]byte(inst.Dir))
	return "berth-native-" + inst.Name + "-" + hex.EncodeToString(h[:4])
}

// planCgroups chooses the instance's cgroup directories: a child called name of the caller's own cgroup in
// every mounted hierarchy (each cgroup v1 hierarchy and the unified one), so that the agent, and the
// containers it places below its own cgroups, stay inside them. The first directory is the one whose
// cgroup.procs lists the processes: the v1 pids hierarchy if there is one, else the unified hierarchy, else
// the first v1 hierarchy. procSelfCgroup and mountinfo are the contents of /proc/self/cgroup and
// /proc/self/mountinfo.
func planCgroups(procSelfCgroup, mountinfo, name string) ([]string, error) {
	own := map[string]string{} // sorted controller list ("" for v2) → cgroup path
	for _, line := range strings.Split(strings.TrimSpace(procSelfCgroup), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		own[ctrlKey(parts[1])] = parts[2]
	}
	var dirs, keys []string
	for _, line := range strings.Split(mountinfo, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 || (g[0] != "cgroup" && g[0] != "cgroup2") {
			continue
		}
		root, mnt := f[3], f[4]
		key := ""
		if g[0] == "cgroup" {
			var ctrls []string
			for _, o := range strings.Split(g[2], ",") {
				if o != "rw" && o != "ro" && !strings.HasPrefix(o, "clone_children") && o != "noprefix" && !strings.HasPrefix(o, "release_agent") && o != "xattr" {
					ctrls = append(ctrls, o)
				}
			}
			key = ctrlKey(strings.Join(ctrls, ","))
		}
		p, ok := own[key]
		if !ok {
			continue
		}
		rel := strings.TrimPrefix(p, root)
		if root != "/" && rel == p { // our cgroup is outside this mount's view
			continue
		}
		dir := path.Join(mnt, rel, name)
		if slices.Contains(dirs, dir) {
			continue
		}
		dirs = append(dirs, dir)
		keys = append(keys, key)
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("%w (cgroups: %q)", errNoCgroup, procSelfCgroup)
	}
	primary := slices.Index(keys, "pids")
	if primary < 0 {
		primary = max(slices.Index(keys, ""), 0)
	}
	dirs[0], dirs[primary] = dirs[primary], dirs[0]
	return dirs, nil
}

// ctrlKey normalises a controller list ("cpuacct,cpu" and "cpu,cpuacct" are one hierarchy).
func ctrlKey(s string) string {
	if s == "" {
		return ""
	}
	c := strings.Split(s, ",")
	slices.Sort(c)
	return strings.Join(c, ",")
}
