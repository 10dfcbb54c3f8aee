//go:build linux

package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Timeouts for the waits a Manager does.
const (
	freezeTimeout  = 2 * time.Second       // v1 FROZEN / v2 "frozen 1"
	deleteTimeout  = 1 * time.Second       // rmdir while tasks exit
	pollMin        = 1 * time.Millisecond  // first poll step
	pollMax        = 10 * time.Millisecond // longest poll step
	procSelfCgroup = "/proc/self/cgroup"   // the caller's cgroups
	killPasses     = 50                    // SIGKILL passes without freezer
	killPassDelay  = 20 * time.Millisecond // between those passes
)

func cgroupMounts() ([]*mountinfo.Info, error) {
	return mountinfo.GetMounts(func(i *mountinfo.Info) (skip, stop bool) {
		return i.FSType != "cgroup" && i.FSType != "cgroup2", false
	})
}

func detect() Mode {
	mounts, err := cgroupMounts()
	if err != nil {
		return Unavailable
	}
	return modeFromMounts(mounts)
}

func newManager(p string) (Manager, error) {
	if p == "" {
		return nil, fmt.Errorf("cgroups: empty cgroups path: %w", ErrInvalid)
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, fmt.Errorf("cgroups: read mount table: %w", err)
	}
	data, err := os.ReadFile(procSelfCgroup)
	if err != nil {
		return nil, fmt.Errorf("cgroups: %w", err)
	}
	pc, err := parseProcCgroup(data)
	if err != nil {
		return nil, err
	}
	switch modeFromMounts(mounts) {
	case V2:
		return newV2(p, mounts, pc)
	case V1:
		return newV1(p, mounts, pc)
	}
	return nil, ErrUnavailable
}

// fileErr wraps err from an operation on file dir/name. A missing file in a
// missing directory is ErrNotExist; the errno is kept either way.
func fileErr(op, dir, name string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	file := filepath.Join(dir, name)
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(dir); errors.Is(serr, fs.ErrNotExist) {
			return fmt.Errorf("cgroups: %s %s: %w", op, file, ErrNotExist)
		}
	}
	return fmt.Errorf("cgroups: %s %s: %w", op, file, err)
}

// readFile returns the trimmed content of dir/name.
func readFile(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", fileErr("read", dir, name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// writeFile writes val into the cgroup interface file dir/name (which must
// exist: cgroup files are never created).
func writeFile(dir, name, val string) error {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fileErr("write "+strconv.Quote(val)+" to", dir, name, err)
	}
	_, err = f.WriteString(val)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fileErr("write "+strconv.Quote(val)+" to", dir, name, err)
	}
	return nil
}

// exists reports whether dir/name exists.
func exists(dir, name string) bool {
	_, err := os.Stat(filepath.Join(dir, name))
	return err == nil
}

// dirMissing returns a wrapped ErrNotExist if dir does not exist.
func dirMissing(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cgroups: %s: %w", dir, ErrNotExist)
	}
	return nil
}

// poll calls cond until it reports true, an error, or timeout passes,
// sleeping pollMin, doubling up to pollMax, between calls. It is used for
// kernel state changes that have no cheaper notification (freezer states).
func poll(timeout time.Duration, cond func() (bool, error)) (bool, error) {
	deadline := time.Now().Add(timeout)
	step := pollMin
	for {
		ok, err := cond()
		if ok || err != nil {
			return ok, err
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		time.Sleep(step)
		step = min(2*step, pollMax)
	}
}

// readPids reads dir/cgroup.procs, and, with recursive, those of every
// cgroup below dir.
func readPids(dir string, recursive bool) ([]int, error) {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, fileErr("read", dir, "cgroup.procs", err)
	}
	pids, err := parsePidList(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if !recursive {
		return pids, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fileErr("list", dir, "", err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		sub, err := readPids(filepath.Join(dir, e.Name()), true)
		if errors.Is(err, ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		pids = append(pids, sub...)
	}
	return pids, nil
}

// killAll sends sig to every pid; processes that already exited are fine.
func killAll(pids []int, sig syscall.Signal) error {
	var errs []error
	for _, p := range pids {
		if err := unix.Kill(p, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("cgroups: kill %d with %v: %w", p, sig, err))
		}
	}
	return errors.Join(errs...)
}

// removeTree removes the cgroup directory dir and any cgroups below it,
// deepest first. Each rmdir is retried until deadline while it fails with
// EBUSY (tasks still exiting). A missing directory is fine.
func removeTree(dir string, deadline time.Time) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fileErr("list", dir, "", err)
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name()), deadline); err != nil {
				return err
			}
		}
	}
	step := pollMin
	for {
		err := unix.Rmdir(dir)
		switch {
		case err == nil, errors.Is(err, unix.ENOENT):
			return nil
		case !errors.Is(err, unix.EBUSY):
			return fmt.Errorf("cgroups: remove %s: %w", dir, err)
		case time.Now().After(deadline):
			return fmt.Errorf("cgroups: remove %s: processes remain: %w", dir, err)
		}
		time.Sleep(step)
		step = min(2*step, pollMax)
	}
}

// mkdirs creates dir and its missing parents down from stop (which must
// exist), returning the directories it created, outermost first.
func mkdirs(stop, dir string) ([]string, error) {
	rel, err := filepath.Rel(stop, dir)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return nil, fmt.Errorf("cgroups: %s is not below %s: %w", dir, stop, ErrInvalid)
	}
	var created []string
	cur := stop
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		err := unix.Mkdir(cur, 0o755)
		if err == nil {
			created = append(created, cur)
			continue
		}
		if !errors.Is(err, unix.EEXIST) {
			rmdirAll(created)
			return nil, fmt.Errorf("cgroups: create %s: %w", cur, err)
		}
	}
	return created, nil
}

// rmdirAll removes dirs innermost first, ignoring errors: it undoes a
// failed Create on cgroups that have no tasks yet.
func rmdirAll(dirs []string) {
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = unix.Rmdir(dirs[i])
	}
}

// readStat reads a number from dir/name into *dst with parse; a missing
// file (controller not mounted or not enabled) leaves *dst alone.
func readStat(dir, name string, dst *uint64, parse func(string) (uint64, error)) error {
	s, err := readFile(dir, name)
	if err != nil {
		if errors.Is(err, ErrNotExist) || !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	n, err := parse(s)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
	}
	*dst = n
	return nil
}

// readKeyed reads a flat keyed file; ok is false if the file is missing.
func readKeyed(dir, name string) (map[string]uint64, bool, error) {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		err = fileErr("read", dir, name, err)
		if errors.Is(err, ErrNotExist) || !errors.Is(err, fs.ErrNotExist) {
			return nil, false, err
		}
		return nil, false, nil
	}
	return parseKeyed(data), true, nil
}
