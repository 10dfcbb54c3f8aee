package main

import (
	"fmt"

	"github.com/berth-dev/berth/hostshim/instance"
	"github.com/berth-dev/berth/platform"
	"github.com/berth-dev/berth/platform/native"
)

// defaultDriver is the driver of new instances on this OS.
const defaultDriver = native.Name

// newDriver returns the platform driver an instance's config names.
func newDriver(inst *instance.Instance, o driverOptions) (platform.Driver, error) {
	switch inst.Config.Driver {
	case native.Name:
		return native.New(inst.Platform(), native.Options{AgentPath: o.agentPath, NoUplink: o.noUplink, Debug: o.debug}), nil
	}
	return nil, fmt.Errorf("instance %s: driver %q: %w (available here: %s)", inst.Name, inst.Config.Driver, platform.ErrUnsupported, native.Name)
}
