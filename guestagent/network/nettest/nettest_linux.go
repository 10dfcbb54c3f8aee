package nettest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// envMarker marks the re-executed test binary; its value is the parent's
// network namespace, which the child checks it has left.
const envMarker = "BERTH_NETTEST_ISOLATED"

// Isolated reports whether the calling test's body should run here. Inside
// the throwaway namespace it checks that the namespace is really a new one,
// brings loopback up and returns true. Outside, it re-runs this one test
// under `unshare --net --mount` (as root; otherwise it skips), calling
// before and after around that run so the caller can check that the host
// did not change, fails the test if the isolated run did not pass, and
// returns false.
func Isolated(t *testing.T, timeout time.Duration, before, after func()) bool {
	t.Helper()
	if parent := os.Getenv(envMarker); parent != "" {
		self, err := os.Readlink("/proc/self/ns/net")
		if err != nil || self == parent {
			t.Fatalf("not in a separate network namespace (%s, parent %s): %v", self, parent, err)
		}
		// A fresh namespace starts with its loopback down.
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			t.Fatal(err)
		}
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, bridges and nftables")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("needs unshare(1) to isolate the test's network namespace")
	}
	hostNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	before()
	cmd := exec.Command(unshare, "--net", "--mount", "--propagation", "private", "--",
		os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1", "-test.timeout="+timeout.String())
	cmd.Env = append(os.Environ(), envMarker+"="+hostNS)
	out, err := cmd.CombinedOutput()
	t.Logf("isolated run:\n%s", out)
	if err != nil {
		t.Fatalf("isolated run: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatal("isolated run did not pass the test")
	}
	after()
	return false
}
