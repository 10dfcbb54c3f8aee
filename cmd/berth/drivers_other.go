//go:build !linux

package main

import (
	"fmt"

	"github.com/berth-dev/berth/hostshim/instance"
	"github.com/berth-dev/berth/platform"
)

// defaultDriver is the driver of new instances on this OS; the VM drivers (qemu, lima, hcs) have not
// landed yet.
const defaultDriver = "qemu"

// newDriver returns the platform driver an instance's config names.
func newDriver(inst *instance.Instance, _ driverOptions) (platform.Driver, error) {
	return nil, fmt.Errorf("instance %s: driver %q: %w (no driver is available on this OS yet)", inst.Name, inst.Config.Driver, platform.ErrUnsupported)
}
