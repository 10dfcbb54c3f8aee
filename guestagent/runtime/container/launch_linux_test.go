package container

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExecLauncherHandshake runs scripts in place of the shim to check the
// start-up pipe protocol: the shim's argv, fd 3, its log, and its session.
func TestExecLauncherHandshake(t *testing.T) {
	dir := t.TempDir()
	script := func(body string) string {
		p := filepath.Join(t.TempDir(), "fake-shim")
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ctx := testCtx(t)

	// argv is "<binary> shim <dir>"; the pipe is fd 3; the shim leads its own session.
	ok := script(`[ "$1" = shim ] && [ "$2" = "` + dir + `" ] || exit 9
sid=$(cut -d' ' -f6 /proc/$$/stat)
[ "$sid" = "$$" ] || { echo "not a session leader" >&2; exit 8; }
echo '{"pid":42}' >&3`)
	pid, err := (&execLauncher{binary: ok}).Launch(ctx, dir)
	if err != nil || pid != 42 {
		t.Fatalf("Launch = %d, %v", pid, err)
	}

	failing := script(`echo '{"error":"create failed: boom"}' >&3`)
	if _, err := (&execLauncher{binary: failing}).Launch(ctx, dir); err == nil || err.Error() != "create failed: boom" {
		t.Fatalf("reported error: %v", err)
	}

	crashing := script(`echo "shim: cannot start: bad config" >&2; exit 1`)
	_, err = (&execLauncher{binary: crashing}).Launch(ctx, dir)
	if err == nil || !strings.Contains(err.Error(), "bad config") {
		t.Fatalf("crash before report: %v", err)
	}

	hanging := script(`exec sleep 100`)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := (&execLauncher{binary: hanging}).Launch(cctx, dir); err == nil {
		t.Fatal("Launch with a cancelled context succeeded")
	}
}
