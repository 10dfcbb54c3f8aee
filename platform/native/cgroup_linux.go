package native

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/platform"
)

// newTrackingCgroups creates the instance's cgroups (see planCgroups) and returns their directories, the
// one listing processes first.
func newTrackingCgroups(inst platform.Instance) ([]string, error) {
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("tracking cgroup: %w", err)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("tracking cgroup: %w", err)
	}
	dirs, err := planCgroups(string(self), string(mi), cgroupName(inst))
	if err != nil {
		return nil, fmt.Errorf("tracking cgroup: %w", err)
	}
	for _, dir := range dirs {
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("tracking cgroup: %w", err)
		}
		// A v1 cpuset cgroup takes no task before it has cpus and mems: inherit the parent's.
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			cur, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil || strings.TrimSpace(string(cur)) != "" {
				continue
			}
			parent, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, f), parent, 0o644)
			}
			if err != nil {
				return nil, fmt.Errorf("tracking cgroup %s: %w", f, err)
			}
		}
	}
	return dirs, nil
}

// joinCgroups moves pid into every cgroup.
func joinCgroups(dirs []string, pid int) error {
	for _, dir := range dirs {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("move agent into cgroup %s: %w", dir, err)
		}
	}
	return nil
}

// removeCgroups kills every process in the first cgroup's tree, then removes every tree, deepest first.
func removeCgroups(ctx context.Context, dirs []string) error {
	if len(dirs) == 0 {
		return nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := cgroupPids(dirs[0])
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("cgroup %s: processes %v survive SIGKILL", dirs[0], pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var errs []error
	for _, dir := range dirs {
		errs = append(errs, removeTree(dir))
	}
	return errors.Join(errs...)
}

// removeTree removes a cgroup and its descendants, deepest first.
func removeTree(dir string) error {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		var err error
		for try := 0; try < 50; try++ { // EBUSY while killed tasks are being reaped
			if err = syscall.Rmdir(d); err == nil || errors.Is(err, fs.ErrNotExist) {
				err = nil
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("remove cgroup %s: %w", d, err)
		}
	}
	return nil
}

// cgroupPids lists the processes of the cgroup and its descendants.
func cgroupPids(dir string) []int {
	var pids []int
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}
