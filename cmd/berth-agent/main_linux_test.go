package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/berth-dev/berth/guestagent/cgroups/cgroupstest"
)

// TestMain removes the <own cgroup>/berth parent that the root tests'
// containers (created by the built agent, a child of this process) leave
// when this run created it.
func TestMain(m *testing.M) {
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
