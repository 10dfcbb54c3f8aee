package libct

import (
	"fmt"
	"os"
	"testing"

	"github.com/berth-dev/berth/guestagent/cgroups/cgroupstest"
)

// TestMain lets the test binary double as container init, as the agent
// binary does: Create re-executes /proc/self/exe with InitArg. Containers
// without a cgroups path go below <own cgroup>/berth; a parent this run
// created is removed at the end.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == InitArg {
		os.Exit(InitMain())
	}
	restore, err := cgroupstest.Guard("berth")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cgroup guard:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := restore(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
