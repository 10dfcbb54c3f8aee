//go:build unix

package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-dev/berth/guestagent/sshserver"
	"github.com/berth-dev/berth/guestagent/sshwire"
	"github.com/berth-dev/berth/guestagent/sshwire/wiretest"
)

// serveHandoff makes a accept handoffs on a new socket and returns its path.
func (a *agent) serveHandoff(t *testing.T) string {
	t.Helper()
	p := filepath.Join(shortTempDir(t), "handoff.sock")
	l, err := sshserver.ListenUnix(p)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.srv.ServeHandoff(l) }()
	t.Cleanup(func() {
		a.srv.Close()
		if err := <-done; !errors.Is(err, sshserver.ErrServerClosed) {
			t.Errorf("ServeHandoff = %v", err)
		}
	})
	return p
}

// forwardWithHandoff runs ForwardHandoff on a new listener with c's Handoff and DialTCP towards target;
// cancel stops it (and waits).
func forwardWithHandoff(t *testing.T, c *Client, target string) (addr string, cancel func()) {
	t.Helper()
	l := listenTCP(t)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ForwardHandoff(ctx, l,
			func(ctx context.Context, conn net.Conn) error { return c.Handoff(ctx, conn, target) },
			func(ctx context.Context) (net.Conn, error) { return c.DialTCP(ctx, target) })
	}()
	cancel = func() {
		stop()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("ForwardHandoff = %v", err)
		}
	}
	t.Cleanup(func() { stop() })
	return l.Addr().String(), cancel
}

// openEcho dials addr, checks one echo and returns the connection.
func openEcho(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	expectEcho(t, conn, "hello")
	return conn
}

// TestForwardHandoff: with handoff, forwarded connections are the agent's: they carry data with half-close
// and outlive both the Forward that accepted them and the SSH connection.
func TestForwardHandoff(t *testing.T) {
	a := startAgent(t, nil)
	sock := a.serveHandoff(t)
	c := a.client(t, func(cfg *Config) { cfg.HandoffSocket = sock })
	target := wiretest.Echo(t).String()
	addr, stop := forwardWithHandoff(t, c, target)
	for i := range 3 {
		if err := echoCheck(addr, 1<<20, i); err != nil {
			t.Fatal(err)
		}
	}
	conn := openEcho(t, addr)
	stop()
	if n := a.l.cut(); n == 0 {
		t.Fatal("no SSH connection to cut")
	}
	// Neither the forwarder nor the SSH link carries the connection any more.
	expectEcho(t, conn, "after the forward and the link are gone")
}

// TestForwardHandoffFallback: an agent that hands out no token gets the connection over SSH (which ends
// with the Forward, as every SSH-carried relay does).
func TestForwardHandoffFallback(t *testing.T) {
	a := startAgent(t, nil) // no ServeHandoff
	sock := filepath.Join(shortTempDir(t), "nobody-listens.sock")
	c := a.client(t, func(cfg *Config) { cfg.HandoffSocket = sock })
	target := wiretest.Echo(t).String()
	probe, _ := net.Pipe()
	defer probe.Close()
	if err := c.Handoff(context.Background(), probe, target); !errors.Is(err, ErrNoHandoff) || !HandoffFallback(err) {
		t.Fatalf("Handoff to an agent without handoff = %v, want ErrNoHandoff", err)
	}
	addr, stop := forwardWithHandoff(t, c, target)
	if err := echoCheck(addr, 1<<20, 0); err != nil {
		t.Fatal(err)
	}
	conn := openEcho(t, addr)
	stop()
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("an SSH-carried connection outlived its Forward")
	}
}

// TestHandoffOutcomes: a handoff without a socket configured, to a missing socket, and to an unreachable
// target; only the last one is final (not a fallback).
func TestHandoffOutcomes(t *testing.T) {
	a := startAgent(t, nil)
	sock := a.serveHandoff(t)
	l := listenTCP(t)
	go func() {
		if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c)
		}
	}()
	conn, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	none := a.client(t, nil)
	if err := none.Handoff(context.Background(), conn, "127.0.0.1:1"); !errors.Is(err, ErrNoHandoff) {
		t.Fatalf("without HandoffSocket: %v", err)
	}
	missing := a.client(t, func(cfg *Config) { cfg.HandoffSocket = sock + ".missing" })
	if err := missing.Handoff(context.Background(), conn, "127.0.0.1:1"); !HandoffFallback(err) {
		t.Fatalf("missing socket: %v, want a fallback error", err)
	}
	c := a.client(t, func(cfg *Config) { cfg.HandoffSocket = sock })
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	err = c.Handoff(context.Background(), conn, deadAddr)
	if !errors.Is(err, sshwire.ErrHandoffDial) || HandoffFallback(err) {
		t.Fatalf("unreachable target: %v, want ErrHandoffDial (final)", err)
	}
}
