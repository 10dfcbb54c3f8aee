package main

import (
	"fmt"

	"github.com/berth-dev/berth/hostshim/instance"
	"github.com/berth-dev/berth/platform"
	"github.com/berth-dev/berth/platform/lima"
	"github.com/berth-dev/berth/platform/qemu"
)

// defaultDriver is the driver of new instances on macOS: Lima (vz with
// virtiofs); `--driver qemu` runs berth's own VM image under QEMU with HVF.
const defaultDriver = lima.Name

// newDriver returns the platform driver an instance's config names.
func newDriver(inst *instance.Instance, o driverOptions) (platform.Driver, error) {
	switch inst.Config.Driver {
	case lima.Name:
		return lima.New(inst.Platform(), lima.Options{Shares: inst.Config.Shares, AgentPath: o.agentPath})
	case qemu.Name:
		return qemu.New(inst.Platform(), qemu.Options{Shares: inst.Config.Shares, Debug: o.debug, Progress: o.progress}), nil
	}
	return nil, fmt.Errorf("instance %s: driver %q: %w (available here: %s, %s)", inst.Name, inst.Config.Driver, platform.ErrUnsupported, lima.Name, qemu.Name)
}
