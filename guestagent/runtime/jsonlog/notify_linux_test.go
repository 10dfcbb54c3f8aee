package jsonlog

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestInotifyNotifier(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := newNotifier(path)
	if err != nil {
		t.Fatalf("inotify unavailable: %v", err)
	}
	defer n.close()
	select {
	case <-n.events:
		t.Fatal("event before any change")
	default:
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("x\n")
	// Well under safetyPoll: the wake-up must come from inotify.
	select {
	case <-n.events:
	case <-time.After(n.safetyPoll / 2):
		t.Fatal("no inotify event after an append")
	}
}
