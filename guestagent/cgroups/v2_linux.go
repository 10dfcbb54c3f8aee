//go:build linux

package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// v2Manager manages one cgroup in the unified hierarchy.
type v2Manager struct {
	path  string   // resolved cgroup path
	own   string   // the caller's cgroup when New ran
	mount mountDir // the cgroup2 mount
	dir   string   // directory of the cgroup
}

var _ Manager = (*v2Manager)(nil)

func newV2(p string, mounts []*mountinfo.Info, pc procCgroup) (*v2Manager, error) {
	md, ok := v2Mount(mounts)
	if !ok {
		return nil, fmt.Errorf("cgroups: no cgroup2 mount at %s: %w", cgroupRoot, ErrUnavailable)
	}
	if !pc.HasUnified {
		return nil, fmt.Errorf("cgroups: %s has no cgroup v2 entry: %w", procSelfCgroup, ErrUnavailable)
	}
	res, err := resolvePath(pc.Unified, p)
	if err != nil {
		return nil, err
	}
	dir, err := hostDir(md, res)
	if err != nil {
		return nil, err
	}
	return &v2Manager{path: res, own: pc.Unified, mount: md, dir: dir}, nil
}

func (m *v2Manager) Path() string { return m.path }

// Create makes the cgroup and its missing parents, enabling the controllers
// berth uses (cpu, cpuset, io, memory, pids — those the parent offers) in
// each parent's cgroup.subtree_control on the way down, then applies res.
//
// Only cgroup.subtree_control is written outside the new cgroup, and only
// in the caller's own cgroup, cgroups below it, and parents Create made
// itself: cgroups above the caller belong to whoever runs berth, so a
// controller they do not delegate is simply unavailable. Because of the
// "no internal processes" rule, enabling a controller in a cgroup that has
// processes fails with EBUSY (except in the root cgroup): the agent must
// live in the root cgroup (as PID 1 in berth's VM) or in a leaf of its own.
func (m *v2Manager) Create(res *specs.LinuxResources) error {
	plan, err := planV2(res)
	if err != nil {
		return err
	}
	root := path.Clean(m.mount.Root)
	var levels []string // existing or to-be-created parents, top down
	for _, a := range ancestors(m.path) {
		if a == root || isBelow(a, root) {
			levels = append(levels, a)
		}
	}
	created := map[string]bool{}
	var createdDirs []string
	fail := func(err error) error {
		rmdirAll(createdDirs)
		return err
	}
	for i, parent := range levels {
		child := m.path
		if i+1 < len(levels) {
			child = levels[i+1]
		}
		pdir, err := hostDir(m.mount, parent)
		if err != nil {
			return fail(err)
		}
		may := parent == m.own || isBelow(parent, m.own) || created[parent]
		if err := enableControllers(pdir, may); err != nil {
			return fail(err)
		}
		cdir, err := hostDir(m.mount, child)
		if err != nil {
			return fail(err)
		}
		err = unix.Mkdir(cdir, 0o755)
		switch {
		case err == nil:
			created[child] = true
			createdDirs = append(createdDirs, cdir)
		case !errors.Is(err, unix.EEXIST):
			return fail(fmt.Errorf("cgroups: create %s: %w", cdir, err))
		}
	}
	if err := m.apply(plan); err != nil {
		return fail(err)
	}
	return nil
}

// enableControllers turns on, in dir's cgroup.subtree_control, each of
// v2Controllers that dir offers (cgroup.controllers) and has not enabled.
// With may false nothing is written.
func enableControllers(dir string, may bool) error {
	avail, err := readFile(dir, "cgroup.controllers")
	if err != nil {
		return err
	}
	enabled, err := readFile(dir, "cgroup.subtree_control")
	if err != nil {
		return err
	}
	for _, c := range controllersToEnable(avail, enabled, may) {
		if err := writeFile(dir, "cgroup.subtree_control", "+"+c); err != nil {
			if errors.Is(err, unix.EBUSY) {
				return fmt.Errorf("%w (cgroup v2 \"no internal processes\" rule: %s has processes of its own, so it cannot enable controllers for child cgroups; run berth-agent in the root cgroup or in a leaf cgroup)", err, dir)
			}
			return fmt.Errorf("cgroups: enable controller %s: %w", c, err)
		}
	}
	return nil
}

func (m *v2Manager) Update(res *specs.LinuxResources) error {
	plan, err := planV2(res)
	if err != nil {
		return err
	}
	if err := dirMissing(m.dir); err != nil {
		return err
	}
	return m.apply(plan)
}

func (m *v2Manager) apply(plan []fileWrite) error {
	for _, w := range plan {
		err := writeFile(m.dir, w.File, w.Value)
		if err != nil && errors.Is(err, fs.ErrNotExist) {
			// The cgroup exists but the file does not: its parent does
			// not delegate the controller.
			ctrl, _, _ := strings.Cut(w.File, ".")
			return fmt.Errorf("%w (the %s controller is not enabled for %s)", err, ctrl, m.path)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (m *v2Manager) Add(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("cgroups: add pid %d: %w", pid, ErrInvalid)
	}
	return writeFile(m.dir, "cgroup.procs", strconv.Itoa(pid))
}

func (m *v2Manager) Pids() ([]int, error) {
	pids, err := readPids(m.dir, true)
	if err != nil {
		return nil, err
	}
	return uniqueSorted(pids), nil
}

// Signal freezes the cgroup (cgroup.freeze, waiting for "frozen 1" in
// cgroup.events), signals every process in it and below, and thaws it
// again unless it was frozen before. SIGKILL uses cgroup.kill (Linux
// 5.14+) when present, which kills the whole subtree atomically.
func (m *v2Manager) Signal(sig syscall.Signal) (err error) {
	if sig == unix.SIGKILL && exists(m.dir, "cgroup.kill") {
		return writeFile(m.dir, "cgroup.kill", "1")
	}
	state, err := readFile(m.dir, "cgroup.freeze")
	if err != nil && errors.Is(err, fs.ErrNotExist) {
		// The cgroup exists but the kernel (< 5.2) has no v2 freezer.
		if sig == unix.SIGKILL {
			return killPassesUntilEmpty(m.Pids)
		}
		pids, err := m.Pids()
		if err != nil {
			return err
		}
		return killAll(pids, sig)
	}
	if err != nil {
		return err
	}
	if state != "1" {
		defer func() {
			if terr := writeFile(m.dir, "cgroup.freeze", "0"); terr != nil && err == nil {
				err = terr
			}
		}()
		if ferr := m.freeze(); ferr != nil {
			if sig != unix.SIGKILL {
				return ferr
			}
			return killPassesUntilEmpty(m.Pids)
		}
	}
	pids, err := m.Pids()
	if err != nil {
		return err
	}
	return killAll(pids, sig)
}

func (m *v2Manager) freeze() error {
	if err := writeFile(m.dir, "cgroup.freeze", "1"); err != nil {
		return err
	}
	ok, err := poll(freezeTimeout, func() (bool, error) {
		ev, _, err := readKeyed(m.dir, "cgroup.events")
		return ev["frozen"] == 1, err
	})
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("cgroups: freeze %s: not frozen after %v", m.dir, freezeTimeout)
	}
	return nil
}

func (m *v2Manager) Stats() (*Stats, error) {
	if err := dirMissing(m.dir); err != nil {
		return nil, err
	}
	s := &Stats{}
	if err := readStat(m.dir, "memory.current", &s.MemoryUsage, parseUint); err != nil {
		return nil, err
	}
	if err := readStat(m.dir, "memory.max", &s.MemoryLimit, parseLimit); err != nil {
		return nil, err
	}
	ev, _, err := readKeyed(m.dir, "memory.events")
	if err != nil {
		return nil, err
	}
	s.OOMKills = ev["oom_kill"]
	if err := readStat(m.dir, "pids.current", &s.Pids, parseUint); err != nil {
		return nil, err
	}
	if err := readStat(m.dir, "pids.max", &s.PidsLimit, parseLimit); err != nil {
		return nil, err
	}
	cs, _, err := readKeyed(m.dir, "cpu.stat")
	if err != nil {
		return nil, err
	}
	s.CPUUsageNS = cs["usage_usec"] * 1000
	return s, nil
}

func (m *v2Manager) OOMKilled() (bool, error) {
	s, err := m.Stats()
	if err != nil {
		return false, err
	}
	return s.OOMKills > 0, nil
}

// Delete removes the cgroup and any cgroups below it, deepest first;
// parents are kept.
func (m *v2Manager) Delete() error {
	return removeTree(m.dir, time.Now().Add(deleteTimeout))
}
