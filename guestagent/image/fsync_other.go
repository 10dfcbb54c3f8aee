//go:build !unix

package image

import "os"

// syncDir is a no-op where directories cannot be fsynced.
func syncDir(string) error { return nil }

// lockRoot opens the lock file; other processes are not excluded on this OS
// (the store only runs in the Linux guest).
func lockRoot(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}
