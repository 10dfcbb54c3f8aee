package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The dependency fences of DESIGN.md: the host CLI never links the guest's
// runtime, and the agent never links host-only code or Windows' hcsshim.
// Checked for every host OS, since build tags decide what is linked.
func TestDependencyFences(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list for several platforms")
	}
	fences := []struct {
		pkg       string
		goos      []string
		forbidden []string
	}{
		{"github.com/berth-dev/berth/cmd/berth", []string{"linux", "darwin", "windows"}, []string{
			"github.com/berth-dev/berth/guestagent/",
			"github.com/opencontainers/runtime-spec/",
			"github.com/containerd/cgroups/",
		}},
		{"github.com/berth-dev/berth/cmd/berth-agent", []string{"linux"}, []string{
			"github.com/berth-dev/berth/hostshim/",
			"github.com/berth-dev/berth/platform/",
			"github.com/Microsoft/hcsshim",
			"github.com/lima-vm/",
		}},
	}
	for _, f := range fences {
		for _, goos := range f.goos {
			cmd := exec.Command("go", "list", "-deps", f.pkg)
			cmd.Env = append(cmd.Environ(), "GOOS="+goos, "CGO_ENABLED=0")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list -deps %s (GOOS=%s): %v", f.pkg, goos, err)
			}
			for _, dep := range strings.Fields(string(out)) {
				for _, bad := range f.forbidden {
					if strings.HasPrefix(dep, bad) || dep == strings.TrimSuffix(bad, "/") {
						t.Errorf("%s (GOOS=%s) imports %s, which it must not", f.pkg, goos, dep)
					}
				}
			}
		}
	}
}
