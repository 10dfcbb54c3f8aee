//go:build !linux

package native

import (
	"context"
	"fmt"
	"net"

	"github.com/berth-dev/berth/platform"
)

func (d *Driver) unsupported(op string) error {
	return fmt.Errorf("native %s: %w (Linux hosts only)", op, platform.ErrUnsupported)
}

// Preflight fails: native needs a Linux host.
func (d *Driver) Preflight() error                       { return d.unsupported("driver") }
func (d *Driver) Create(context.Context) error           { return d.unsupported("create") }
func (d *Driver) Start(context.Context) error            { return d.unsupported("start") }
func (d *Driver) Stop(context.Context) error             { return d.unsupported("stop") }
func (d *Driver) Delete(context.Context) error           { return d.unsupported("delete") }
func (d *Driver) Dial(context.Context) (net.Conn, error) { return nil, d.unsupported("dial") }

// Status reports not-created: nothing can exist here.
func (d *Driver) Status(context.Context) (platform.Status, error) {
	return platform.Status{State: platform.StateNotCreated, Notes: []string{"native driver: Linux hosts only"}}, nil
}
