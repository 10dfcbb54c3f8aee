package main

import (
	"fmt"

	"github.com/berth-dev/berth/hostshim/instance"
	"github.com/berth-dev/berth/platform"
	"github.com/berth-dev/berth/platform/native"
	"github.com/berth-dev/berth/platform/qemu"
)

// defaultDriver is the driver of new instances on this OS: a QEMU VM (KVM
// when usable, TCG otherwise); `--driver native` runs the agent on the host
// in namespaces of its own instead.
const defaultDriver = qemu.Name

// newDriver returns the platform driver an instance's config names.
func newDriver(inst *instance.Instance, o driverOptions) (platform.Driver, error) {
	switch inst.Config.Driver {
	case native.Name:
		return native.New(inst.Platform(), native.Options{AgentPath: o.agentPath, NoUplink: o.noUplink, Debug: o.debug}), nil
	case qemu.Name:
		return qemu.New(inst.Platform(), qemu.Options{Shares: inst.Config.Shares, Debug: o.debug, Progress: o.progress}), nil
	}
	return nil, fmt.Errorf("instance %s: driver %q: %w (available here: %s, %s)", inst.Name, inst.Config.Driver, platform.ErrUnsupported, qemu.Name, native.Name)
}
