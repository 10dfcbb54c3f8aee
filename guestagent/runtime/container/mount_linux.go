package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// overlayMounter mounts overlayfs root filesystems.
type overlayMounter struct{}

func newOverlayMounter() rootfsMounter { return overlayMounter{} }

func (overlayMounter) Mount(layers []string, upper, work, target string) error {
	if len(layers) == 0 {
		// overlayfs needs a lower layer: an image without layers gets an empty one.
		empty := filepath.Join(filepath.Dir(upper), "empty-lower")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return err
		}
		layers = []string{empty}
	}
	data, err := overlayData(layers, upper, work, "")
	if err != nil {
		return err
	}
	if len(data) < os.Getpagesize()-1 {
		if err := unix.Mount("overlay", target, "overlay", 0, data); err != nil {
			return &os.PathError{Op: "mount overlay", Path: target, Err: err}
		}
		return nil
	}
	base := commonParent(layers)
	data, err = overlayData(layers, upper, work, base)
	if err != nil {
		return err
	}
	if len(data) >= os.Getpagesize()-1 {
		return fmt.Errorf("mount overlay on %s: %w: %d layers do not fit in the mount data", target, ErrInvalid, len(layers))
	}
	return mountFromDir(base, data, target)
}

// mountFromDir mounts with relative lowerdirs from dir: on a locked OS
// thread that has unshared its filesystem context, so the chdir affects no
// other goroutine; the thread is discarded afterwards.
func mountFromDir(dir, data, target string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("mount overlay on %s: unshare fs: %w", target, err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- &os.PathError{Op: "chdir", Path: dir, Err: err}
			return
		}
		if err := unix.Mount("overlay", target, "overlay", 0, data); err != nil {
			errc <- &os.PathError{Op: "mount overlay", Path: target, Err: err}
			return
		}
		errc <- nil
	}()
	return <-errc
}

func (overlayMounter) Unmount(target string) error {
	for i := 0; ; i++ {
		err := unix.Unmount(target, 0)
		switch {
		case err == nil:
			continue // stacked mounts: unmount until nothing is left
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not (or no longer) a mount point
		case errors.Is(err, unix.EBUSY) && i < 20:
			time.Sleep(50 * time.Millisecond)
		case errors.Is(err, unix.EBUSY):
			if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				return &os.PathError{Op: "unmount", Path: target, Err: err}
			}
			return nil
		default:
			return &os.PathError{Op: "unmount", Path: target, Err: err}
		}
	}
}

func (overlayMounter) Mounted(target string) (bool, error) {
	return mountinfo.Mounted(target)
}
