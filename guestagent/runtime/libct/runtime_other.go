//go:build !linux

package libct

import (
	"context"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func (r *Runtime) create(context.Context, string, string, CreateOpts) (*Process, error) {
	return nil, ErrNotSupported
}

func (r *Runtime) start(context.Context, string) error { return ErrNotSupported }

func (r *Runtime) state(string) (*specs.State, error) { return nil, ErrNotSupported }

func (r *Runtime) list() ([]*specs.State, error) { return nil, ErrNotSupported }

func (r *Runtime) kill(string, syscall.Signal, bool) error { return ErrNotSupported }

func (r *Runtime) exec(context.Context, string, *specs.Process, ExecOpts) (*Process, error) {
	return nil, ErrNotSupported
}

func (r *Runtime) delete(context.Context, string, bool) error { return ErrNotSupported }

func initMain() int { return 1 }
