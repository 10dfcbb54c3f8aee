package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const berthMod = "github.com/berth-dev/berth/"

// The dependency fences of DESIGN.md: the host CLI and every host package never link the guest's code, the
// agent never links host-only code or Windows' hcsshim, and the one package both ends of the SSH transport
// share (guestagent/sshwire, the only guest package the host may link) links neither side. The Windows
// engine (cmd/berth-engine: platform/hcs and guestagent/engine) links no host package and not the Linux
// runtime (guestagent/runtime/libct). Checked for every host OS, since build tags decide what is linked.
func TestDependencyFences(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list for several platforms")
	}
	hostOS := []string{"linux", "darwin", "windows"}
	fences := []struct {
		pkgs      []string // packages or patterns whose dependencies are checked
		goos      []string
		forbidden []string // import path prefixes (a trailing "/" also forbids the path without it)
		allowed   []string // exact import paths exempt from forbidden
	}{
		{[]string{berthMod + "cmd/berth", berthMod + "hostshim/..."}, hostOS, []string{
			berthMod + "guestagent/",
			"github.com/opencontainers/runtime-spec/",
			"github.com/containerd/cgroups/",
		}, []string{berthMod + "guestagent/sshwire"}},
		{[]string{berthMod + "cmd/berth-agent"}, []string{"linux"}, []string{
			berthMod + "hostshim/",
			berthMod + "platform/",
			"github.com/Microsoft/hcsshim",
			"github.com/lima-vm/",
		}, nil},
		{[]string{berthMod + "guestagent/sshwire"}, hostOS, []string{berthMod}, nil},
		{[]string{berthMod + "cmd/berth-engine"}, hostOS, []string{
			berthMod + "hostshim/",
			berthMod + "guestagent/runtime/libct/",
		}, nil},
	}
	for _, f := range fences {
		for _, goos := range f.goos {
			// One line per package: its import path, then its dependencies.
			args := append([]string{"list", "-f", "{{.ImportPath}}{{range .Deps}} {{.}}{{end}}"}, f.pkgs...)
			cmd := exec.Command("go", args...)
			cmd.Env = append(cmd.Environ(), "GOOS="+goos, "CGO_ENABLED=0")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list %s (GOOS=%s): %v", strings.Join(f.pkgs, " "), goos, err)
			}
			for line := range strings.Lines(string(out)) {
				deps := strings.Fields(line)
				if len(deps) == 0 {
					continue
				}
				pkg := deps[0]
				for _, dep := range deps[1:] {
					if forbiddenDep(dep, f.forbidden, f.allowed) {
						t.Errorf("%s (GOOS=%s) imports %s, which it must not", pkg, goos, dep)
					}
				}
			}
		}
	}
}

// forbiddenDep reports whether dep matches a forbidden prefix and is not one of the allowed paths.
func forbiddenDep(dep string, forbidden, allowed []string) bool {
	if slices.Contains(allowed, dep) {
		return false
	}
	for _, bad := range forbidden {
		if strings.HasPrefix(dep, bad) || dep == strings.TrimSuffix(bad, "/") {
			return true
		}
	}
	return false
}

func TestForbiddenDep(t *testing.T) {
	forbidden := []string{berthMod + "guestagent/", "github.com/Microsoft/hcsshim"}
	allowed := []string{berthMod + "guestagent/sshwire"}
	for dep, want := range map[string]bool{
		berthMod + "guestagent/sshwire":             false,
		berthMod + "guestagent/sshwire/x":           true, // exactly the package, nothing below it
		berthMod + "guestagent/sshserver":           true,
		berthMod + "guestagent":                     true,
		berthMod + "guestagentx":                    false,
		berthMod + "hostshim/transport":             false,
		"github.com/Microsoft/hcsshim/internal/hcs": true,
	} {
		if got := forbiddenDep(dep, forbidden, allowed); got != want {
			t.Errorf("forbiddenDep(%s) = %v, want %v", dep, got, want)
		}
	}
}
