//go:build !windows

package main

import (
	"context"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// watchResize sends the terminal's size now and on every SIGWINCH until the
// returned stop is called.
func watchResize(ctx context.Context, resize func(h, w uint)) (stop func()) {
	send := func() {
		if w, h, err := term.GetSize(int(os.Stdout.Fd())); err == nil {
			resize(uint(h), uint(w))
		}
	}
	send()
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				send()
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}
