//go:build unix

package image

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncDir makes a rename or unlink in dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// lockRoot takes an exclusive, non-blocking flock on path so that two agents
// never share a store. The lock lives as long as the returned file is open.
func lockRoot(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
