package cgroupstest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Dirs returns, for every cgroup hierarchy this process is in, the
// directory <mount>/<own path>/<name>, whether it exists or not.
func Dirs(name string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var mounts []string
		if parts[1] == "" { // cgroup v2: hybrid (unified/) or pure
			mounts = []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}
		} else {
			for _, c := range strings.Split(strings.TrimPrefix(parts[1], "name="), ",") {
				mounts = append(mounts, filepath.Join("/sys/fs/cgroup", c))
			}
		}
		for _, m := range mounts {
			if st, err := os.Stat(filepath.Join(m, parts[2])); err == nil && st.IsDir() {
				out = append(out, filepath.Join(m, parts[2], name))
			}
		}
	}
	return out, nil
}

// Guard records which of the parent directories called name exist now; the
// returned func removes those that did not (they must be empty by then: a
// leftover child is reported as an error, never removed).
func Guard(name string) (func() error, error) {
	dirs, err := Dirs(name)
	if err != nil {
		return nil, err
	}
	var created []string
	for _, d := range dirs {
		if _, err := os.Stat(d); errors.Is(err, fs.ErrNotExist) {
			created = append(created, d)
		}
	}
	return func() error {
		var errs []error
		for _, d := range created {
			if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove test cgroup parent: %w", err))
			}
		}
		return errors.Join(errs...)
	}, nil
}
