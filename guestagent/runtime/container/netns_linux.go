package container

import "golang.org/x/sys/unix"

// netnsAlive reports whether path is a network namespace file (nsfs), not
// just the mount point a gone namespace left behind.
func netnsAlive(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}
