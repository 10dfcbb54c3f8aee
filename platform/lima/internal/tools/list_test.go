package tools

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/lima-vm/lima/v2/pkg/limatype"

	"github.com/berth-dev/berth/platform/lima"
)

// TestListDecodesLimaInstances marshals Lima's own Instance type as `limactl list --json` prints it and
// decodes it with berth's ParseList.
func TestListDecodesLimaInstances(t *testing.T) {
	vz, arch := limatype.VZ, limatype.AARCH64
	running := &limatype.Instance{
		Name: "berth-default", Status: limatype.StatusRunning, Dir: "/Users/ann/.berth/default/lima/berth-default",
		VMType: vz, Arch: arch, CPUs: 4, Memory: 4 << 30, Disk: 100 << 30, SSHLocalPort: 50022, SSHAddress: "127.0.0.1",
		HostAgentPID: 321, Config: &limatype.LimaYAML{VMType: &vz, Arch: &arch}, LimaVersion: "2.2.0",
	}
	broken := &limatype.Instance{Name: "berth-old", Status: limatype.StatusBroken, Errors: []error{errors.New("disk missing")}}
	var out []byte
	for _, inst := range []*limatype.Instance{running, broken} {
		b, err := json.Marshal(inst)
		if err != nil {
			t.Fatal(err)
		}
		out = append(append(out, b...), '\n')
	}
	entries, err := lima.ParseList(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("%d entries", len(entries))
	}
	e := entries[0]
	if e.Name != running.Name || e.Status != lima.LimaStatusRunning || e.SSHLocalPort != 50022 || e.SSHAddress != "127.0.0.1" ||
		e.HostAgentPID != 321 || e.VMType != lima.VMTypeVZ || e.Arch != lima.ArchAArch64 || e.Memory != 4<<30 || e.LimaVersion != "2.2.0" {
		t.Errorf("running entry %+v", e)
	}
	if b := entries[1]; b.Status != lima.LimaStatusBroken || len(b.Errors) != 1 || b.Errors[0] != "disk missing" {
		t.Errorf("broken entry %+v", b)
	}
}
