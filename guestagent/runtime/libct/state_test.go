package libct

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestComputeStatus(t *testing.T) {
	st := &containerState{ID: "c", InitPid: 42, InitStart: 1000}
	alive := procInfo{Exists: true, Start: 1000}
	cases := []struct {
		name string
		st   *containerState
		p    procInfo
		fifo bool
		want specs.ContainerState
	}{
		{"creating", &containerState{ID: "c"}, procInfo{}, true, specs.StateCreating},
		{"created", st, alive, true, specs.StateCreated},
		{"running", st, alive, false, specs.StateRunning},
		{"gone", st, procInfo{}, true, specs.StateStopped},
		{"zombie", st, procInfo{Exists: true, Zombie: true, Start: 1000}, false, specs.StateStopped},
		{"pid reused", st, procInfo{Exists: true, Start: 2000}, false, specs.StateStopped},
	}
	for _, c := range cases {
		if got := computeStatus(c.st, c.p, c.fifo); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestParseStat(t *testing.T) {
	line := "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000000 100 18446744073709551615\n"
	state, start, err := parseStat([]byte(line))
	if err != nil || state != 'S' || start != 987654 {
		t.Fatalf("parseStat = %c, %d, %v", state, start, err)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 notanumber 1"} {
		if _, _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
	self := readProcInfo(os.Getpid())
	if _, err := os.Stat("/proc/self/stat"); err == nil && (!self.Exists || self.Zombie || self.Start == 0) {
		t.Errorf("readProcInfo(self) = %+v", self)
	}
}

func TestStateFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := loadState(dir, "x"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("load missing: %v", err)
	}
	st := &containerState{ID: "x", Bundle: "/b", InitPid: 7, InitStart: 9, Created: time.Unix(1, 0).UTC(),
		Annotations: map[string]string{"k": "v"}, CgroupPath: "berth/x", Config: &specs.Spec{Version: "1.0.2"}}
	if err := saveState(dir, st); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, stateFileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file %v, %v", fi, err)
	}
	got, err := loadState(dir, "x")
	if err != nil || got.InitPid != 7 || got.InitStart != 9 || got.Annotations["k"] != "v" || got.Config.Version != "1.0.2" || !got.Created.Equal(st.Created) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if s := st.ociState(specs.StateRunning); s.Pid != 7 || s.ID != "x" || s.Bundle != "/b" || s.Version != specs.Version {
		t.Errorf("running state %+v", s)
	}
	if s := st.ociState(specs.StateStopped); s.Pid != 0 {
		t.Errorf("stopped state has pid %d", s.Pid)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}

func TestSyncMessages(t *testing.T) {
	typ, payload, err := decodeMsg(encodeMsg(msgConsole, []byte("/dev/pts/3")))
	if err != nil || typ != msgConsole || string(payload) != "/dev/pts/3" {
		t.Fatalf("round trip: %c %q %v", typ, payload, err)
	}
	typ, payload, err = decodeMsg(encodeMsg(msgReady, nil))
	if err != nil || typ != msgReady || len(payload) != 0 {
		t.Fatalf("empty payload: %c %q %v", typ, payload, err)
	}
	if _, _, err := decodeMsg(nil); err == nil {
		t.Error("decoded an empty message")
	}
}
