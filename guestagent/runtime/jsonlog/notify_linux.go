package jsonlog

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// newNotifier watches path with inotify. The descriptor is non-blocking, so
// reads park in the runtime poller and closing it ends the reading goroutine.
func newNotifier(path string) (*notifier, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	mask := uint32(unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_ATTRIB | unix.IN_MOVE_SELF | unix.IN_DELETE_SELF)
	if _, err := unix.InotifyAddWatch(fd, path, mask); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inotify_add_watch %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), "inotify:"+path)
	ch := make(chan struct{}, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return &notifier{
		events:     ch,
		safetyPoll: time.Second,
		close:      func() { f.Close() },
	}, nil
}
