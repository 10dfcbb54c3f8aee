//go:build root && linux

package native

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/hostshim/transport"
	"github.com/berth-dev/berth/platform"
	"github.com/berth-dev/berth/platform/platformtest"
)

var (
	agentOnce sync.Once
	agentBin  string
	agentErr  error
)

// buildAgent builds cmd/berth-agent once per test binary.
func buildAgent(t *testing.T) string {
	t.Helper()
	agentOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-native-test-")
		if err != nil {
			agentErr = err
			return
		}
		agentBin = filepath.Join(dir, "berth-agent")
		cmd := exec.Command("go", "build", "-o", agentBin, "github.com/berth-dev/berth/cmd/berth-agent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			agentErr = err
			t.Logf("%s", out)
		}
	})
	if agentErr != nil {
		t.Fatalf("build berth-agent: %v", agentErr)
	}
	return agentBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if agentBin != "" {
		os.RemoveAll(filepath.Dir(agentBin))
	}
	os.Exit(code)
}

func TestConformance(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: namespaces, mounts, cgroups")
	}
	agent := buildAgent(t)
	var dirs []string
	platformtest.Run(t, func(t *testing.T, inst platform.Instance) platform.Driver {
		dirs = append(dirs, inst.Dir)
		return New(inst, Options{AgentPath: agent})
	})
	for _, dir := range dirs {
		if m := mountsUnder(t, dir); len(m) > 0 {
			t.Errorf("mounts left behind under %s: %v", dir, m)
		}
		for _, cg := range plannedCgroups(t, dir) {
			if _, err := os.Stat(cg); err == nil {
				t.Errorf("cgroup left behind: %s", cg)
			}
		}
	}
}

// TestAgentNamespaces: the agent runs in its own network and mount namespaces, and its mounts stay there.
func TestAgentNamespaces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: namespaces, mounts, cgroups")
	}
	agent := buildAgent(t)
	inst := platform.Instance{Name: "ns", Dir: t.TempDir()}
	inst.HostKeyFile, inst.AuthorizedKeysFile = writeKeys(t, inst.Dir)
	d := New(inst, Options{AgentPath: agent, NoUplink: true})
	ctx := t.Context()
	if err := d.Create(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Delete(context.Background()); err != nil {
			t.Error(err)
		}
	})
	st, err := d.Status(ctx)
	if err != nil || st.PID == 0 {
		t.Fatalf("status %+v %v", st, err)
	}
	for _, ns := range []string{"net", "mnt"} {
		self, _ := os.Readlink("/proc/self/ns/" + ns)
		theirs, err := os.Readlink("/proc/" + strconv.Itoa(st.PID) + "/ns/" + ns)
		if err != nil || self == theirs {
			t.Errorf("%s namespace: agent %q, host %q (%v)", ns, theirs, self, err)
		}
	}
	found := false
	for _, n := range st.Notes {
		found = found || strings.Contains(n, "no outbound network")
	}
	if !found {
		t.Errorf("status notes %q do not mention the missing uplink", st.Notes)
	}
	if m := mountsUnder(t, inst.Dir); len(m) > 0 {
		t.Errorf("agent mounts visible on the host: %v", m)
	}
}

// writeKeys writes a host key and an authorized client key into dir.
func writeKeys(t *testing.T, dir string) (hostKey, authKeys string) {
	t.Helper()
	_, _, priv, err := transport.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	_, pub, _, err := transport.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	hostKey, authKeys = filepath.Join(dir, "ssh_host_key"), filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(hostKey, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(authKeys, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	return hostKey, authKeys
}

// plannedCgroups are the tracking cgroups of the "pt" instance in dir.
func plannedCgroups(t *testing.T, dir string) []string {
	t.Helper()
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := planCgroups(string(self), string(mi), cgroupName(platform.Instance{Name: "pt", Dir: dir}))
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// mountsUnder lists mount points at or below dir in this process's mount namespace.
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			out = append(out, fields[4])
		}
	}
	return out
}
