//go:build linux

package cgroups

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// v1Manager manages the same OCI cgroupsPath in every mounted v1 hierarchy.
type v1Manager struct {
	ctrls  []string            // managed controllers, v1Controllers order
	mounts map[string]mountDir // controller → its mount
	paths  map[string]string   // controller → resolved cgroup path
	dirs   map[string]string   // controller → directory of the cgroup
}

var _ Manager = (*v1Manager)(nil)

func newV1(p string, mounts []*mountinfo.Info, pc procCgroup) (*v1Manager, error) {
	m := &v1Manager{
		mounts: v1Mounts(mounts),
		paths:  map[string]string{},
		dirs:   map[string]string{},
	}
	for _, c := range sortedControllers(m.mounts) {
		own, ok := pc.V1[c]
		if !ok {
			// Mounted but the caller is not listed in it: nothing to
			// resolve against, so berth leaves that hierarchy alone.
			continue
		}
		res, err := resolvePath(own, p)
		if err != nil {
			return nil, fmt.Errorf("%s controller: %w", c, err)
		}
		dir, err := hostDir(m.mounts[c], res)
		if err != nil {
			return nil, err
		}
		m.ctrls = append(m.ctrls, c)
		m.paths[c], m.dirs[c] = res, dir
	}
	if len(m.ctrls) == 0 {
		return nil, fmt.Errorf("cgroups: no cgroup v1 controller usable for %q: %w", p, ErrUnavailable)
	}
	return m, nil
}

// Path reports the resolved path in the memory hierarchy (else the first
// managed one).
func (m *v1Manager) Path() string {
	if p, ok := m.paths["memory"]; ok {
		return p
	}
	return m.paths[m.ctrls[0]]
}

func (m *v1Manager) Create(res *specs.LinuxResources) error {
	plan, err := planV1(res)
	if err != nil {
		return err
	}
	var created []string
	for _, c := range m.ctrls {
		mp := m.mounts[c].Mountpoint
		cs, err := mkdirs(mp, m.dirs[c])
		if err != nil {
			rmdirAll(created)
			return err
		}
		created = append(created, cs...)
		if c == "cpuset" {
			// A new v1 cpuset cgroup starts with empty cpus and mems, and
			// no task can join it until they are set: copy the parent's
			// values into every cpuset cgroup created here, top down.
			for _, d := range cs {
				if err := copyCpuset(d); err != nil {
					rmdirAll(created)
					return err
				}
			}
		}
	}
	if err := m.apply(plan); err != nil {
		rmdirAll(created)
		return err
	}
	return nil
}

// copyCpuset copies cpuset.cpus and cpuset.mems from dir's parent when dir's
// are empty.
func copyCpuset(dir string) error {
	parent := filepath.Dir(dir)
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := readFile(dir, f)
		if err != nil {
			return err
		}
		if cur != "" {
			continue
		}
		v, err := readFile(parent, f)
		if err != nil {
			return err
		}
		if err := writeFile(dir, f, v); err != nil {
			return err
		}
	}
	return nil
}

func (m *v1Manager) Update(res *specs.LinuxResources) error {
	plan, err := planV1(res)
	if err != nil {
		return err
	}
	for _, c := range m.ctrls {
		if err := dirMissing(m.dirs[c]); err != nil {
			return err
		}
	}
	return m.apply(plan)
}

func (m *v1Manager) apply(plan v1Plan) error {
	for _, c := range v1Controllers {
		ws := plan[c]
		if len(ws) == 0 {
			continue
		}
		dir, ok := m.dirs[c]
		if !ok {
			return fmt.Errorf("cgroups: %s controller is not mounted, cannot apply %s: %w", c, ws[0].File, ErrUnavailable)
		}
		if c == "memory" {
			if err := applyMemoryV1(dir, ws); err != nil {
				return err
			}
			continue
		}
		for _, w := range ws {
			if err := writeFile(dir, w.File, w.Value); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyMemoryV1 writes the memory writes. memory.memsw.limit_in_bytes is
// skipped when swap accounting is off (the file is missing). The kernel
// keeps memsw >= limit at every step, so if the limit-first order is
// refused the writes are retried memsw first.
func applyMemoryV1(dir string, ws []fileWrite) error {
	var limits []fileWrite
	for _, w := range ws {
		switch w.File {
		case "memory.memsw.limit_in_bytes":
			if !exists(dir, w.File) {
				continue
			}
			limits = append(limits, w)
		case "memory.limit_in_bytes":
			limits = append(limits, w)
		default:
			if err := writeFile(dir, w.File, w.Value); err != nil {
				return err
			}
		}
	}
	var first error
	for _, w := range limits {
		if err := writeFile(dir, w.File, w.Value); err != nil {
			first = err
			break
		}
	}
	if first == nil || len(limits) < 2 {
		return first
	}
	for i := len(limits) - 1; i >= 0; i-- {
		if err := writeFile(dir, limits[i].File, limits[i].Value); err != nil {
			return errors.Join(first, err)
		}
	}
	return nil
}

func (m *v1Manager) Add(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("cgroups: add pid %d: %w", pid, ErrInvalid)
	}
	for _, c := range m.ctrls {
		if err := writeFile(m.dirs[c], "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// Pids lists the union of the processes in the cgroup's directories.
func (m *v1Manager) Pids() ([]int, error) {
	var all []int
	found := false
	for _, c := range m.ctrls {
		pids, err := readPids(m.dirs[c], false)
		if errors.Is(err, ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		found = true
		all = append(all, pids...)
	}
	if !found {
		return nil, fmt.Errorf("cgroups: %s: %w", m.Path(), ErrNotExist)
	}
	return uniqueSorted(all), nil
}

func (m *v1Manager) Signal(sig syscall.Signal) (err error) {
	dir, ok := m.dirs["freezer"]
	if !ok {
		return m.signalUnfrozen(sig, fmt.Errorf("cgroups: freezer controller not mounted: %w", ErrUnavailable))
	}
	state, err := readFile(dir, "freezer.state")
	if err != nil {
		return err
	}
	if state != "FROZEN" {
		defer func() {
			// Thaw even on error; a thaw failure only matters if the rest
			// succeeded.
			if terr := writeFile(dir, "freezer.state", "THAWED"); terr != nil && err == nil {
				err = terr
			}
		}()
		if ferr := freezeV1(dir); ferr != nil {
			return m.signalUnfrozen(sig, ferr)
		}
	}
	pids, err := m.Pids()
	if err != nil {
		return err
	}
	return killAll(pids, sig)
}

// freezeV1 asks the freezer to freeze dir and waits until it reports
// FROZEN (it reads FREEZING while tasks are still being stopped).
func freezeV1(dir string) error {
	if err := writeFile(dir, "freezer.state", "FROZEN"); err != nil {
		return err
	}
	ok, err := poll(freezeTimeout, func() (bool, error) {
		s, err := readFile(dir, "freezer.state")
		return s == "FROZEN", err
	})
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("cgroups: freeze %s: still not FROZEN after %v", dir, freezeTimeout)
	}
	return nil
}

// signalUnfrozen is the fallback when the cgroup cannot be frozen: SIGKILL
// is sent in repeated passes until the cgroup is empty, so that children
// forked meanwhile die too; other signals report why freezing failed.
func (m *v1Manager) signalUnfrozen(sig syscall.Signal, why error) error {
	if sig != unix.SIGKILL {
		return why
	}
	return killPassesUntilEmpty(m.Pids)
}

// killPassesUntilEmpty SIGKILLs what list returns until it returns nothing.
func killPassesUntilEmpty(list func() ([]int, error)) error {
	for range killPasses {
		pids, err := list()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if err := killAll(pids, unix.SIGKILL); err != nil {
			return err
		}
		time.Sleep(killPassDelay)
	}
	return nil
}

func (m *v1Manager) Stats() (*Stats, error) {
	s := &Stats{}
	if dir, ok := m.dirs["memory"]; ok {
		if err := readStat(dir, "memory.usage_in_bytes", &s.MemoryUsage, parseUint); err != nil {
			return nil, err
		}
		if err := readStat(dir, "memory.limit_in_bytes", &s.MemoryLimit, parseLimit); err != nil {
			return nil, err
		}
		oc, ok, err := readKeyed(dir, "memory.oom_control")
		if err != nil {
			return nil, err
		}
		if ok {
			if n, has := oc["oom_kill"]; has {
				s.OOMKills = n // Linux >= 4.13
			} else if oc["under_oom"] > 0 {
				// Older kernels do not count kills; a cgroup that is
				// under OOM right now has at least one victim coming.
				s.OOMKills = 1
			}
		}
	}
	if dir, ok := m.dirs["pids"]; ok {
		if err := readStat(dir, "pids.current", &s.Pids, parseUint); err != nil {
			return nil, err
		}
		if err := readStat(dir, "pids.max", &s.PidsLimit, parseLimit); err != nil {
			return nil, err
		}
	}
	if dir, ok := m.dirs["cpuacct"]; ok {
		if err := readStat(dir, "cpuacct.usage", &s.CPUUsageNS, parseUint); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (m *v1Manager) OOMKilled() (bool, error) {
	s, err := m.Stats()
	if err != nil {
		return false, err
	}
	return s.OOMKills > 0, nil
}

// Delete removes the leaf cgroup (and any cgroups below it) from every
// hierarchy; parents are kept.
func (m *v1Manager) Delete() error {
	deadline := time.Now().Add(deleteTimeout)
	var errs []error
	for _, c := range m.ctrls {
		if err := removeTree(m.dirs[c], deadline); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
