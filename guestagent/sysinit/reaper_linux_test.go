package sysinit

import (
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestReaper(t *testing.T) {
	// As PID 1 does, adopt orphans: the test process becomes their subreaper.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skipf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	r := newReaper(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer r.close()
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()

	if err := r.run(devnull, "/bin/sh", "-c", "exit 0"); err != nil {
		t.Errorf("exit 0: %v", err)
	}
	if err := r.run(devnull, "/bin/sh", "-c", "exit 3"); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("exit 3: %v", err)
	}
	// Many short children: every status reaches its waiter even when the child exits before start returns.
	for range 20 {
		if err := r.run(devnull, "/bin/true"); err != nil {
			t.Fatalf("true: %v", err)
		}
	}
	// An orphan re-parented to the subreaper is reaped by the loop.
	if err := r.run(devnull, "/bin/sh", "-c", "sleep 0.2 & exit 0"); err != nil {
		t.Fatal(err)
	}
	if !r.children() {
		t.Fatal("the orphan sleep is not a child")
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.children() {
		if time.Now().After(deadline) {
			t.Fatal("orphan not reaped")
		}
		time.Sleep(20 * time.Millisecond)
	}
	pid, c, err := r.start([]string{"/bin/sleep", "10"}, &os.ProcAttr{Files: []*os.File{nil, devnull, devnull}})
	if err != nil {
		t.Fatal(err)
	}
	unix.Kill(pid, unix.SIGKILL)
	if ws := <-c; !ws.Signaled() || ws.Signal() != unix.SIGKILL {
		t.Errorf("killed child: %s", describe(ws))
	}
}
