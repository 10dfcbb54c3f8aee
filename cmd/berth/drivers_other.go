//go:build !linux && !darwin

package main

import (
	"fmt"

	"github.com/berth-dev/berth/hostshim/instance"
	"github.com/berth-dev/berth/platform"
	"github.com/berth-dev/berth/platform/qemu"
)

// defaultDriver is the driver of new instances on this OS. On Windows the
// engine for Windows containers (platform/hcs) is served on a named pipe by
// a service, not through an instance; Linux containers need a VM.
const defaultDriver = qemu.Name

// newDriver returns the platform driver an instance's config names.
func newDriver(inst *instance.Instance, o driverOptions) (platform.Driver, error) {
	if inst.Config.Driver == qemu.Name {
		return qemu.New(inst.Platform(), qemu.Options{Shares: inst.Config.Shares, Debug: o.debug, Progress: o.progress}), nil
	}
	return nil, fmt.Errorf("instance %s: driver %q: %w (available here: %s)", inst.Name, inst.Config.Driver, platform.ErrUnsupported, qemu.Name)
}
