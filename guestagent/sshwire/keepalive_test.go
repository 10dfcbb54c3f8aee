package sshwire

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// fakePeer answers keepalives at once with err, or never if hang is set (until release is closed).
type fakePeer struct {
	err     error
	hang    bool
	release chan struct{}
	sent    chan string // name of every request sent
	bad     atomic.Value
}

func newFakePeer(t *testing.T) *fakePeer {
	p := &fakePeer{release: make(chan struct{}), sent: make(chan string, 1000)}
	t.Cleanup(func() { close(p.release) })
	return p
}

func (p *fakePeer) SendRequest(name string, wantReply bool, payload []byte) (bool, []byte, error) {
	if !wantReply || payload != nil {
		p.bad.Store(fmt.Sprintf("request %s wantReply=%v payload=%x", name, wantReply, payload))
	}
	p.sent <- name
	if p.hang {
		<-p.release
	}
	return p.err == nil, nil, p.err
}

func TestKeepAliveAnswered(t *testing.T) {
	p := newFakePeer(t)
	done := make(chan struct{})
	res := make(chan int, 1)
	// A large maxMissed keeps a busy test machine from failing this test; a peer that does not answer gets
	// only one request (TestKeepAliveSilentPeer), so ten requests mean the answers were seen.
	go func() { res <- KeepAlive(p, time.Millisecond, 1000, done, nil) }()
	for range 10 {
		select {
		case name := <-p.sent:
			if name != RequestKeepAlive {
				t.Fatalf("request %q", name)
			}
		case n := <-res:
			t.Fatalf("KeepAlive gave up on an answering peer after %d misses", n)
		case <-time.After(5 * time.Second):
			t.Fatal("no keepalive sent")
		}
	}
	close(done)
	if n := <-res; n != 0 {
		t.Fatalf("KeepAlive after done = %d, want 0", n)
	}
	if bad := p.bad.Load(); bad != nil {
		t.Fatal(bad)
	}
}

func TestKeepAliveSilentPeer(t *testing.T) {
	p := newFakePeer(t)
	p.hang = true
	start := time.Now()
	if n := KeepAlive(p, 5*time.Millisecond, 3, make(chan struct{}), nil); n != 3 {
		t.Fatalf("KeepAlive = %d, want 3 missed", n)
	}
	// One request, then three ticks that find it unanswered.
	if d := time.Since(start); d < 4*5*time.Millisecond {
		t.Fatalf("gave up after %v, before four intervals", d)
	}
	if len(p.sent) != 1 {
		t.Fatalf("%d requests sent while the first was pending, want 1", len(p.sent))
	}
}

func TestKeepAliveSendError(t *testing.T) {
	p := newFakePeer(t)
	p.err = errors.New("link gone")
	errs := make(chan error, 100)
	done := make(chan struct{})
	res := make(chan int, 1)
	go func() { res <- KeepAlive(p, time.Millisecond, 1000, done, func(err error) { errs <- err }) }()
	select {
	case err := <-errs:
		if !errors.Is(err, p.err) {
			t.Fatalf("onErr got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("onErr not called")
	}
	close(done)
	if n := <-res; n != 0 {
		t.Fatalf("KeepAlive after done = %d, want 0", n)
	}
}
