package tools

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/lima-vm/lima/v2/pkg/limatype"
	"github.com/lima-vm/lima/v2/pkg/limayaml"
)

// TestGoldenYAMLAcceptedByLima loads berth's golden lima.yaml files with Lima's own loader (defaults
// filled) and validator, so a field berth mirrors wrongly or Lima rejects fails here.
func TestGoldenYAMLAcceptedByLima(t *testing.T) {
	t.Setenv("LIMA_HOME", t.TempDir())
	files, err := filepath.Glob("../../testdata/lima-*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			// Lima only warns about unknown fields ("Non-strict YAML"): catch the warning.
			var logs bytes.Buffer
			logrus.SetOutput(&logs)
			defer logrus.SetOutput(os.Stderr)
			y, err := limayaml.Load(context.Background(), b, f)
			if err != nil {
				t.Fatalf("Lima cannot load it: %v", err)
			}
			if strings.Contains(logs.String(), "Non-strict") {
				t.Fatalf("Lima does not know some fields:\n%s", logs.String())
			}
			if err := limayaml.Validate(y, true); err != nil {
				t.Fatalf("Lima rejects it: %v", err)
			}
			if *y.Containerd.System || *y.Containerd.User {
				t.Error("containerd enabled after Lima's defaults")
			}
			if len(y.Provision) != 1 || y.Provision[0].Mode != limatype.ProvisionModeSystem {
				t.Errorf("provision: %+v", y.Provision)
			}
			// Lima appends its fallback rule after berth's ignore-everything rule.
			if len(y.PortForwards) == 0 || !y.PortForwards[0].Ignore || y.PortForwards[0].GuestPortRange != [2]int{1, 65535} {
				t.Errorf("port forwards: %+v", y.PortForwards)
			}
		})
	}
}
