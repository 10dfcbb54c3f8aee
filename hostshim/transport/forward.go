package transport

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/berth-dev/berth/guestagent/sshwire"
)

// Forward accepts connections on l and relays each to a connection from dial, both ways, with half-close
// (EOF one way becomes CloseWrite on the other side) and backpressure (a bounded buffer per direction). A
// connection whose dial fails is closed (dial reports its own errors). Forward returns when ctx ends
// (ctx.Err()) or l fails (that error); it closes l, then closes the connections still being relayed and
// waits for them.
func Forward(ctx context.Context, l net.Listener, dial func(ctx context.Context) (net.Conn, error)) error {
	return ForwardHandoff(ctx, l, nil, dial)
}

// ForwardHandoff is Forward that first offers each accepted connection to handoff (Client.Handoff for the
// connection's target, typically). Only when handoff's error says the connection is still ours
// (HandoffFallback) is it dialled and relayed here; otherwise this process's copy is closed at once, the
// agent having taken the connection (nil) or refused its target. A nil handoff is Forward.
func ForwardHandoff(ctx context.Context, l net.Listener, handoff func(ctx context.Context, c net.Conn) error, dial func(ctx context.Context) (net.Conn, error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // runs before wg.Wait: aborts the relays
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.Close()
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if handoff != nil {
				if err := handoff(ctx, c); !HandoffFallback(err) {
					c.Close()
					return
				}
			}
			r, err := dial(ctx)
			if err != nil {
				c.Close()
				return
			}
			sshwire.Relay(ctx, c, r)
		}()
	}
}
