package image

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFS flushes the file system holding path, making a freshly unpacked
// layer durable before its metadata is written.
func syncFS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
