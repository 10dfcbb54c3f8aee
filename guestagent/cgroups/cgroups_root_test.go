//go:build root && linux

package cgroups

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// hogEnv makes the test binary, re-executed, allocate and touch hogBytes
// after reading one byte from stdin (so the test can move it into a cgroup
// first).
const (
	hogEnv   = "BERTH_CGROUPS_TEST_HOG"
	hogBytes = 200 << 20
)

func TestMain(m *testing.M) {
	if os.Getenv(hogEnv) == "1" {
		var b [1]byte
		_, _ = os.Stdin.Read(b[:])
		mem := make([]byte, hogBytes)
		for i := 0; i < len(mem); i += 4096 {
			mem[i] = 1
		}
		fmt.Println("survived", len(mem))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// syncBuffer is a bytes.Buffer safe for a child's output copier and the
// test reading it concurrently.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// dirsOf returns the host directories of m's cgroup.
func dirsOf(t *testing.T, m Manager) []string {
	t.Helper()
	switch mm := m.(type) {
	case *v1Manager:
		var out []string
		for _, c := range mm.ctrls {
			out = append(out, mm.dirs[c])
		}
		return out
	case *v2Manager:
		return []string{mm.dir}
	}
	t.Fatalf("unknown manager %T", m)
	return nil
}

// ctrlDir is the directory of controller c (v1) or the cgroup (v2).
func ctrlDir(t *testing.T, m Manager, c string) string {
	t.Helper()
	switch mm := m.(type) {
	case *v1Manager:
		d, ok := mm.dirs[c]
		if !ok {
			t.Fatalf("controller %s not managed", c)
		}
		return d
	case *v2Manager:
		return mm.dir
	}
	t.Fatalf("unknown manager %T", m)
	return ""
}

func readTrim(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// newCreated makes a Manager for a unique relative path, creates it with
// res, and registers cleanup that kills its processes, deletes it and
// checks no directory is left.
func newCreated(t *testing.T, res *specs.LinuxResources) Manager {
	t.Helper()
	if Detect() == Unavailable {
		t.Skip("no cgroups")
	}
	name := fmt.Sprintf("berth-cgtest-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_"))
	m, err := New(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(res); err != nil {
		t.Fatal(err)
	}
	dirs := dirsOf(t, m)
	t.Cleanup(func() {
		_ = m.Signal(syscall.SIGKILL)
		if err := m.Delete(); err != nil {
			t.Errorf("cleanup Delete: %v", err)
		}
		for _, d := range dirs {
			if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("cleanup: %s still exists (%v)", d, err)
			}
		}
	})
	return m
}

// startIn starts argv with a stdin pipe, adds it to m, and returns the
// command and the pipe; writing to the pipe releases the child. Cleanup
// kills and reaps it.
func startIn(t *testing.T, m Manager, env []string, argv ...string) (*exec.Cmd, io.WriteCloser, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if err := m.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	return cmd, in, out
}

func TestRootDetect(t *testing.T) {
	mode := Detect()
	t.Logf("Detect() = %v", mode)
	mounts, err := cgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	if got := modeFromMounts(mounts); got != mode {
		t.Fatalf("Detect %v, mounts say %v", mode, got)
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err == nil && mode != V1 {
		t.Fatalf("v1 memory hierarchy mounted but Detect() = %v", mode)
	}
}

func TestRootLimitsPidsSignalDelete(t *testing.T) {
	res := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr(int64(32 << 20))},
		Pids:   &specs.LinuxPids{Limit: ptr(int64(10))},
		CPU:    &specs.LinuxCPU{Quota: ptr(int64(50000)), Period: ptr(uint64(100000)), Shares: ptr(uint64(512))},
	}
	m := newCreated(t, res)

	// The cgroup is below the test's own cgroup in every hierarchy.
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := parseProcCgroup(own)
	if err != nil {
		t.Fatal(err)
	}
	switch mm := m.(type) {
	case *v1Manager:
		for _, c := range mm.ctrls {
			if !isBelow(mm.paths[c], pc.V1[c]) {
				t.Errorf("%s: %s not below own %s", c, mm.paths[c], pc.V1[c])
			}
		}
		if got := readTrim(t, ctrlDir(t, m, "memory"), "memory.limit_in_bytes"); got != strconv.Itoa(32<<20) {
			t.Errorf("memory.limit_in_bytes = %s", got)
		}
		if got := readTrim(t, ctrlDir(t, m, "cpu"), "cpu.cfs_quota_us"); got != "50000" {
			t.Errorf("cpu.cfs_quota_us = %s", got)
		}
		if got := readTrim(t, ctrlDir(t, m, "cpu"), "cpu.cfs_period_us"); got != "100000" {
			t.Errorf("cpu.cfs_period_us = %s", got)
		}
		if got := readTrim(t, ctrlDir(t, m, "cpu"), "cpu.shares"); got != "512" {
			t.Errorf("cpu.shares = %s", got)
		}
	case *v2Manager:
		if !isBelow(mm.path, pc.Unified) {
			t.Errorf("%s not below own %s", mm.path, pc.Unified)
		}
		if got := readTrim(t, mm.dir, "memory.max"); got != strconv.Itoa(32<<20) {
			t.Errorf("memory.max = %s", got)
		}
		if got := readTrim(t, mm.dir, "cpu.max"); got != "50000 100000" {
			t.Errorf("cpu.max = %s", got)
		}
		if got := readTrim(t, mm.dir, "cpu.weight"); got != strconv.FormatUint(sharesToWeight(512), 10) {
			t.Errorf("cpu.weight = %s", got)
		}
	}
	if got := readTrim(t, ctrlDir(t, m, "pids"), "pids.max"); got != "10" {
		t.Errorf("pids.max = %s", got)
	}

	cmd, _, _ := startIn(t, m, nil, "sleep", "30")
	pid := cmd.Process.Pid
	pids, err := m.Pids()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pids, []int{pid}) {
		t.Fatalf("Pids() = %v, want [%d]", pids, pid)
	}
	pcg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pcg), m.Path()) {
		t.Errorf("/proc/%d/cgroup does not name %s:\n%s", pid, m.Path(), pcg)
	}
	st, err := m.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats: %+v", *st)
	// MemoryUsage may be 0 on v1: memory charged before the move stays
	// with the old cgroup (memory.move_charge_at_immigrate is 0).
	if st.Pids != 1 || st.PidsLimit != 10 || st.MemoryLimit != 32<<20 || st.OOMKills != 0 {
		t.Errorf("unexpected stats %+v", *st)
	}

	// Update raises the memory limit and lifts the pids limit.
	if err := m.Update(&specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20))},
		Pids:   &specs.LinuxPids{Limit: ptr(int64(0))},
	}); err != nil {
		t.Fatal(err)
	}
	if st, err = m.Stats(); err != nil {
		t.Fatal(err)
	}
	if st.MemoryLimit != 64<<20 || st.PidsLimit != 0 {
		t.Errorf("after Update: %+v", *st)
	}

	// Delete refuses while a process lives in the cgroup.
	if err := m.Delete(); err == nil || !strings.Contains(err.Error(), "processes remain") {
		t.Fatalf("Delete with a live process: %v", err)
	}

	if err := m.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	werr := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("sleep did not die of SIGKILL: %v", werr)
	}
	if err := m.Delete(); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirsOf(t, m) {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after Delete", d)
		}
	}
	if err := m.Delete(); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if _, err := m.Stats(); !errors.Is(err, ErrNotExist) {
		t.Errorf("Stats after Delete: %v, want ErrNotExist", err)
	}
	if err := m.Add(os.Getpid()); !errors.Is(err, ErrNotExist) {
		t.Errorf("Add after Delete: %v, want ErrNotExist", err)
	}
	if _, err := m.Pids(); !errors.Is(err, ErrNotExist) {
		t.Errorf("Pids after Delete: %v, want ErrNotExist", err)
	}
}

func TestRootPidsLimitStopsForks(t *testing.T) {
	m := newCreated(t, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(10))}})
	cmd, in, out := startIn(t, m, nil, "/usr/bin/busybox", "sh", "-c",
		`read x; n=0; for i in $(seq 50); do sleep 5 & done; echo started; wait`)
	if _, err := in.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	// busybox sh gives up at the first failed fork ("can't fork"); a shell
	// that carries on prints "started" after the loop. Either happens long
	// before the sleeps end.
	ok, err := poll(10*time.Second, func() (bool, error) {
		s := out.String()
		return strings.Contains(s, "started") || strings.Contains(s, "fork"), nil
	})
	if err != nil || !ok {
		t.Fatalf("loop did not finish: %q", out.String())
	}
	pids, err := m.Pids()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d processes in the cgroup; shell said: %q", len(pids), firstLine(out.String()))
	if len(pids) > 10 || len(pids) < 2 {
		t.Errorf("%d processes with pids.max 10", len(pids))
	}
	if !strings.Contains(out.String(), "fork") {
		t.Errorf("no fork failure reported: %q", out.String())
	}
	if err := m.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	ok, err = poll(2*time.Second, func() (bool, error) {
		p, err := m.Pids()
		return len(p) == 0, err
	})
	if err != nil || !ok {
		t.Fatalf("processes left after SIGKILL: %v", err)
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func TestRootSignalNonFatal(t *testing.T) {
	m := newCreated(t, nil)
	// A shell with children; SIGTERM reaches all of them (busybox sh does
	// not ignore SIGTERM in a -c script).
	cmd, in, out := startIn(t, m, nil, "/usr/bin/busybox", "sh", "-c",
		`read x; sleep 30 & sleep 30 & echo up; wait`)
	if _, err := in.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if ok, _ := poll(5*time.Second, func() (bool, error) { return strings.Contains(out.String(), "up"), nil }); !ok {
		t.Fatal("shell did not start its children")
	}
	if err := m.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	ok, err := poll(2*time.Second, func() (bool, error) {
		p, err := m.Pids()
		return len(p) == 0, err
	})
	if err != nil || !ok {
		p, _ := m.Pids()
		t.Fatalf("processes left after SIGTERM: %v %v", p, err)
	}
	// The cgroup must not be left frozen.
	switch mm := m.(type) {
	case *v1Manager:
		if s := readTrim(t, mm.dirs["freezer"], "freezer.state"); s != "THAWED" {
			t.Errorf("freezer.state = %s", s)
		}
	case *v2Manager:
		if s := readTrim(t, mm.dir, "cgroup.freeze"); s != "0" {
			t.Errorf("cgroup.freeze = %s", s)
		}
	}
}

func TestRootOOMKill(t *testing.T) {
	m := newCreated(t, &specs.LinuxResources{Memory: &specs.LinuxMemory{
		Limit: ptr(int64(32 << 20)),
		Swap:  ptr(int64(32 << 20)), // no swap on top of memory
	}})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd, in, out := startIn(t, m, []string{hogEnv + "=1"}, exe, "-test.run=^$")
	if _, err := in.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	werr := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("hog was not SIGKILLed: %v, output %q", werr, out.String())
	}
	oom, err := m.OOMKilled()
	if err != nil {
		t.Fatal(err)
	}
	st, _ := m.Stats()
	t.Logf("stats after OOM: %+v", *st)
	if !oom {
		t.Fatalf("OOMKilled() = false after the hog was killed; stats %+v", *st)
	}

	// Raising memory and memory+swap together: on v1 the limit-first order
	// is refused (limit above memsw), so Update must retry memsw first.
	if err := m.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{
		Limit: ptr(int64(64 << 20)),
		Swap:  ptr(int64(64 << 20)),
	}}); err != nil {
		t.Fatal(err)
	}
	switch mm := m.(type) {
	case *v1Manager:
		dir := mm.dirs["memory"]
		if got := readTrim(t, dir, "memory.limit_in_bytes"); got != strconv.Itoa(64<<20) {
			t.Errorf("memory.limit_in_bytes = %s", got)
		}
		if exists(dir, "memory.memsw.limit_in_bytes") {
			if got := readTrim(t, dir, "memory.memsw.limit_in_bytes"); got != strconv.Itoa(64<<20) {
				t.Errorf("memory.memsw.limit_in_bytes = %s", got)
			}
		}
	case *v2Manager:
		if got := readTrim(t, mm.dir, "memory.max"); got != strconv.Itoa(64<<20) {
			t.Errorf("memory.max = %s", got)
		}
		if got := readTrim(t, mm.dir, "memory.swap.max"); got != "0" {
			t.Errorf("memory.swap.max = %s", got)
		}
	}
}

func TestRootDevicesV1(t *testing.T) {
	if Detect() != V1 {
		t.Skip("device rules are applied on cgroup v1 only")
	}
	m := newCreated(t, &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rwm"},
	}})
	if got := readTrim(t, ctrlDir(t, m, "devices"), "devices.list"); got != "c 1:3 rwm" {
		t.Errorf("devices.list = %q", got)
	}
	cmd, in, out := startIn(t, m, nil, "/usr/bin/busybox", "sh", "-c",
		`read x; echo ok > /dev/null && echo null-ok; /usr/bin/busybox head -c1 /dev/zero >/dev/null || echo zero-denied`)
	if _, err := in.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if s := out.String(); !strings.Contains(s, "null-ok") || !strings.Contains(s, "zero-denied") {
		t.Errorf("device rules not enforced: %q", s)
	}
}

func TestRootBadPaths(t *testing.T) {
	if Detect() == Unavailable {
		t.Skip("no cgroups")
	}
	for _, p := range []string{"", ".", "..", "a/../../b", "/"} {
		if _, err := New(p); !errors.Is(err, ErrInvalid) {
			t.Errorf("New(%q) = %v, want ErrInvalid", p, err)
		}
	}
}

// TestRootV2OnHybrid exercises the v2 manager on a v1 machine's hybrid
// cgroup2 mount (/sys/fs/cgroup/unified, no controllers of berth's):
// parent creation, recursive Pids, freeze-based Signal, cgroup.kill and
// deepest-first Delete. Resource files cannot be tested there.
func TestRootV2OnHybrid(t *testing.T) {
	if Detect() != V1 {
		t.Skip("not a v1 hybrid machine; the other tests cover v2")
	}
	mounts, err := cgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	var md mountDir
	for _, mi := range mounts {
		if mi.FSType == "cgroup2" {
			md = mountDir{Mountpoint: mi.Mountpoint, Root: mi.Root}
		}
	}
	if md.Mountpoint == "" {
		t.Skip("no hybrid cgroup2 mount")
	}
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := parseProcCgroup(data)
	if err != nil || !pc.HasUnified {
		t.Fatalf("no unified entry: %v", err)
	}
	parent := fmt.Sprintf("berth-cgtest-%d-v2", os.Getpid())
	res, err := resolvePath(pc.Unified, parent+"/leaf")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := hostDir(md, res)
	if err != nil {
		t.Fatal(err)
	}
	m := &v2Manager{path: res, own: pc.Unified, mount: md, dir: dir}
	parentDir := filepath.Dir(dir)
	t.Cleanup(func() {
		_ = m.Signal(syscall.SIGKILL)
		if err := m.Delete(); err != nil {
			t.Errorf("cleanup Delete: %v", err)
		}
		if err := os.Remove(parentDir); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := m.Create(nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Create(&specs.LinuxResources{}); err != nil {
		t.Fatalf("Create on an existing cgroup: %v", err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}

	startTwo := func() (*exec.Cmd, *exec.Cmd) {
		a, _, _ := startIn(t, m, nil, "sleep", "30")
		b, _, _ := startIn(t, m, nil, "sleep", "30")
		if err := writeFile(sub, "cgroup.procs", strconv.Itoa(b.Process.Pid)); err != nil {
			t.Fatal(err)
		}
		pids, err := m.Pids()
		if err != nil {
			t.Fatal(err)
		}
		want := []int{a.Process.Pid, b.Process.Pid}
		slices.Sort(want)
		if !slices.Equal(pids, want) {
			t.Fatalf("Pids() = %v, want %v (recursive)", pids, want)
		}
		return a, b
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		a, b := startTwo()
		if err := m.Signal(sig); err != nil {
			t.Fatalf("Signal(%v): %v", sig, err)
		}
		for _, c := range []*exec.Cmd{a, b} {
			werr := c.Wait()
			var ee *exec.ExitError
			if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != sig {
				t.Errorf("Signal(%v): child ended with %v", sig, werr)
			}
		}
		if s := readTrim(t, dir, "cgroup.freeze"); s != "0" {
			t.Errorf("after Signal(%v): cgroup.freeze = %s", sig, s)
		}
	}
	if err := m.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists", dir)
	}
	if _, err := os.Stat(parentDir); err != nil {
		t.Errorf("Delete removed the parent too: %v", err)
	}
	if _, err := m.Pids(); !errors.Is(err, ErrNotExist) {
		t.Errorf("Pids after Delete: %v", err)
	}
}
