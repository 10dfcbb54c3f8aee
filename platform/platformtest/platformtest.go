// Package platformtest is the conformance suite every platform driver passes (STYLE.md item 6): a driver
// package calls Run from its own (usually privileged) test with a factory for its driver.
//
// The suite creates an instance in a temporary directory with the host's instance store (keys generated, the
// agent's host key pinned) and checks: status before create; create (idempotent); dial before start fails
// with ErrNotRunning; start (idempotent) and status running; dial, an SSH handshake pinning the host key
// and a /_ping through direct-streamlocal to the engine socket; a wrong pinned key refused; stop
// (idempotent), status stopped, dial refused; start again; delete (idempotent) and status not-created.
package platformtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/berth-dev/berth/hostshim/instance"
	"github.com/berth-dev/berth/hostshim/transport"
	"github.com/berth-dev/berth/platform"
)

// Factory returns the driver under test for inst.
type Factory func(t *testing.T, inst platform.Instance) platform.Driver

// Timeout bounds each operation of the suite.
var Timeout = 2 * time.Minute

// Run runs the suite against the drivers newDriver returns.
func Run(t *testing.T, newDriver Factory) {
	t.Run("Lifecycle", func(t *testing.T) { testLifecycle(t, newDriver) })
	t.Run("StartWithoutCreate", func(t *testing.T) { testStartWithoutCreate(t, newDriver) })
}

// newInstance creates an instance in a fresh store.
func newInstance(t *testing.T, driver string) *instance.Instance {
	t.Helper()
	store := &instance.Store{Root: t.TempDir()}
	inst, err := store.Create("pt", instance.Config{Driver: driver})
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

func wantState(t *testing.T, d platform.Driver, want platform.State) {
	t.Helper()
	st, err := d.Status(ctxT(t))
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.State != want {
		t.Fatalf("Status: state %q, want %q (%+v)", st.State, want, st)
	}
}

func testLifecycle(t *testing.T, newDriver Factory) {
	inst := newInstance(t, "conformance")
	d := newDriver(t, inst.Platform())
	ctx := ctxT(t)
	t.Cleanup(func() {
		if err := d.Delete(context.Background()); err != nil {
			t.Errorf("cleanup Delete: %v", err)
		}
	})
	if d.Name() == "" || d.EngineSocket() == "" {
		t.Fatalf("Name %q, EngineSocket %q: both must be set", d.Name(), d.EngineSocket())
	}
	wantState(t, d, platform.StateNotCreated)
	for i := range 2 {
		if err := d.Create(ctx); err != nil {
			t.Fatalf("Create #%d: %v", i+1, err)
		}
	}
	wantState(t, d, platform.StateStopped)
	if c, err := d.Dial(ctx); !errors.Is(err, platform.ErrNotRunning) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("Dial before Start: %v, want ErrNotRunning", err)
	}
	for i := range 2 {
		if err := d.Start(ctx); err != nil {
			t.Fatalf("Start #%d: %v", i+1, err)
		}
	}
	st, err := d.Status(ctx)
	if err != nil || st.State != platform.StateRunning || st.Endpoint == "" {
		t.Fatalf("Status after Start: %+v, %v", st, err)
	}
	checkAgent(t, inst, d)
	checkWrongHostKey(t, inst, d)

	for i := range 2 {
		if err := d.Stop(ctx); err != nil {
			t.Fatalf("Stop #%d: %v", i+1, err)
		}
	}
	wantState(t, d, platform.StateStopped)
	if c, err := d.Dial(ctx); err == nil {
		c.Close()
		t.Fatal("Dial after Stop succeeded")
	}

	if err := d.Start(ctx); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	wantState(t, d, platform.StateRunning)
	checkAgent(t, inst, d)

	for i := range 2 {
		if err := d.Delete(ctx); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	wantState(t, d, platform.StateNotCreated)
}

func testStartWithoutCreate(t *testing.T, newDriver Factory) {
	inst := newInstance(t, "conformance")
	d := newDriver(t, inst.Platform())
	if err := d.Start(ctxT(t)); !errors.Is(err, platform.ErrNotCreated) {
		t.Fatalf("Start before Create: %v, want ErrNotCreated", err)
	}
	if err := d.Stop(ctxT(t)); err != nil {
		t.Fatalf("Stop of a never-started instance: %v", err)
	}
}

// checkAgent connects with the pinned host key and pings the engine through direct-streamlocal.
func checkAgent(t *testing.T, inst *instance.Instance, d platform.Driver) {
	t.Helper()
	tc := client(t, inst, d, nil)
	ctx := ctxT(t)
	if err := tc.Connect(ctx); err != nil {
		t.Fatalf("SSH handshake with the agent: %v", err)
	}
	c, err := tc.DialStreamLocal(ctx, d.EngineSocket())
	if err != nil {
		t.Fatalf("direct-streamlocal to %s: %v", d.EngineSocket(), err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "GET /_ping HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatalf("write /_ping: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read /_ping: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Api-Version") == "" {
		t.Fatalf("/_ping: %s, Api-Version %q", resp.Status, resp.Header.Get("Api-Version"))
	}
}

// checkWrongHostKey: a client pinning another key fails the handshake with ErrHostKeyMismatch.
func checkWrongHostKey(t *testing.T, inst *instance.Instance, d platform.Driver) {
	t.Helper()
	other, _, _, err := transport.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tc := client(t, inst, d, other)
	if err := tc.Connect(ctxT(t)); !errors.Is(err, transport.ErrHostKeyMismatch) {
		t.Fatalf("handshake pinning a wrong host key: %v, want ErrHostKeyMismatch", err)
	}
}

func client(t *testing.T, inst *instance.Instance, d platform.Driver, wrongHostKey ssh.Signer) *transport.Client {
	t.Helper()
	signer, err := inst.ClientSigner()
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := inst.PinnedHostKey()
	if err != nil {
		t.Fatal(err)
	}
	if wrongHostKey != nil {
		hostKey = wrongHostKey.PublicKey()
	}
	tc, err := transport.New(transport.Config{Dial: d.Dial, Signer: signer, HostKey: hostKey, KeepAlive: -1, ConnectTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	return tc
}
