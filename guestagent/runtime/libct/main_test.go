package libct

import (
	"os"
	"testing"
)

// TestMain lets the test binary double as container init, as the agent
// binary does: Create re-executes /proc/self/exe with InitArg.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == InitArg {
		os.Exit(InitMain())
	}
	os.Exit(m.Run())
}
