package main

import (
	"context"
	"os"
	"time"

	"golang.org/x/term"
)

// watchResize sends the console's size now and whenever it changes (Windows
// has no SIGWINCH, so it polls) until the returned stop is called.
func watchResize(ctx context.Context, resize func(h, w uint)) (stop func()) {
	lastW, lastH := -1, -1
	send := func() {
		if w, h, err := term.GetSize(int(os.Stdout.Fd())); err == nil && (w != lastW || h != lastH) {
			lastW, lastH = w, h
			resize(uint(h), uint(w))
		}
	}
	send()
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				send()
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { close(done) }
}
