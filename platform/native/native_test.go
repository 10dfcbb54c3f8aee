package native

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/berth-dev/berth/platform"
)

func TestAgentArgs(t *testing.T) {
	inst := platform.Instance{Name: "x", Dir: "/h/x", HostKeyFile: "/h/x/ssh_host_key", AuthorizedKeysFile: "/h/x/authorized_keys"}
	got := agentArgs("/bin/berth-agent", inst, pathsOf(inst.Dir), true)
	want := []string{"/bin/berth-agent", "--debug", "serve",
		"--socket", "/h/x/run/docker.sock", "--root", "/h/x/data", "--run-root", "/h/x/run",
		"--ssh-listen", "unix:/h/x/agent.ssh",
		"--handoff-listen", "/h/x/agent.handoff",
		"--ssh-host-key", "/h/x/ssh_host_key", "--ssh-authorized-keys", "/h/x/authorized_keys", "--bridge", "--mtu", "65520"}
	if !slices.Equal(got, want) {
		t.Fatalf("agentArgs:\n got %q\nwant %q", got, want)
	}
	if got := agentArgs("a", inst, pathsOf(inst.Dir), false); got[1] != "serve" {
		t.Fatalf("without debug: %q", got)
	}
	if d := New(inst, Options{}); d.EngineSocket() != "/h/x/run/docker.sock" || d.Name() != "native" || d.AgentLog() != "/h/x/agent.log" {
		t.Fatalf("driver paths: %q %q %q", d.EngineSocket(), d.Name(), d.AgentLog())
	}
}

func TestSlirpArgs(t *testing.T) {
	got := slirpArgs("/usr/bin/slirp4netns", 42)
	want := []string{"/usr/bin/slirp4netns", "--configure", "--mtu=65520", "--ready-fd=3", "42", "tap0"}
	if !slices.Equal(got, want) {
		t.Fatalf("slirpArgs: %q", got)
	}
}

func TestFindAgent(t *testing.T) {
	have := map[string]bool{}
	exists := func(p string) bool { return have[p] }
	if p, _ := findAgent("/x/agent", "/env/agent", "/opt/berth", "/cwd", exists); p != "/x/agent" {
		t.Fatalf("explicit: %q", p)
	}
	if p, _ := findAgent("", "/env/agent", "/opt/berth", "/cwd", exists); p != "/env/agent" {
		t.Fatalf("env: %q", p)
	}
	if _, err := findAgent("", "", "/opt/bin/berth", "/cwd", exists); !errors.Is(err, ErrNoAgent) {
		t.Fatalf("nothing found: %v", err)
	}
	have[filepath.FromSlash("/cwd/bin/berth-agent")] = true
	if p, _ := findAgent("", "", "/opt/bin/berth", "/cwd", exists); p != filepath.FromSlash("/cwd/bin/berth-agent") {
		t.Fatalf("cwd: %q", p)
	}
	have[filepath.FromSlash("/opt/bin/berth-agent")] = true
	if p, _ := findAgent("", "", "/opt/bin/berth", "/cwd", exists); p != filepath.FromSlash("/opt/bin/berth-agent") {
		t.Fatalf("next to exe: %q", p)
	}
}

func TestPlanCgroups(t *testing.T) {
	self := "9:name=systemd:/\n8:pids:/user.slice/x\n4:memory:/m\n2:cpuacct,cpu:/c\n0::/u\n"
	mi := `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /proc rw - proc proc rw`
	got, err := planCgroups(self, mi, "b")
	want := []string{"/sys/fs/cgroup/pids/user.slice/x/b", "/sys/fs/cgroup/memory/m/b", "/sys/fs/cgroup/cpu,cpuacct/c/b",
		"/sys/fs/cgroup/systemd/b", "/sys/fs/cgroup/unified/u/b"}
	slices.Sort(want[1:])
	if err == nil {
		slices.Sort(got[1:])
	}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("v1:\n got %q %v\nwant %q", got, err, want)
	}
	v2 := "0::/user.slice/session-1.scope\n"
	mi2 := "25 23 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate"
	if got, err := planCgroups(v2, mi2, "b"); err != nil || !slices.Equal(got, []string{"/sys/fs/cgroup/user.slice/session-1.scope/b"}) {
		t.Fatalf("v2: %q %v", got, err)
	}
	// A namespaced mount whose root is the caller's cgroup.
	mi3 := "25 23 0:22 /user.slice /sys/fs/cgroup rw - cgroup2 cgroup2 rw"
	if got, err := planCgroups("0::/user.slice/s\n", mi3, "b"); err != nil || !slices.Equal(got, []string{"/sys/fs/cgroup/s/b"}) {
		t.Fatalf("namespaced: %q %v", got, err)
	}
	if _, err := planCgroups(self, "", "b"); !errors.Is(err, errNoCgroup) {
		t.Fatalf("no hierarchy: %v", err)
	}
	a := cgroupName(platform.Instance{Name: "default", Dir: "/a"})
	b := cgroupName(platform.Instance{Name: "default", Dir: "/b"})
	if a == b || len(a) != len("berth-native-default-")+8 {
		t.Fatalf("cgroup names %q %q", a, b)
	}
}
