package engine

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/berth-dev/berth/guestagent/runtime/container"
	"github.com/berth-dev/berth/guestagent/runtime/jsonlog"
)

// noContainers answers every container call of an engine configured
// without a container manager (an image-only engine, or tests).
type noContainers struct{}

var errNoContainers = fmt.Errorf("this engine has no container runtime: %w", ErrUnavailable)

func (noContainers) Create(context.Context, container.CreateOptions) (*container.Container, error) {
	return nil, errNoContainers
}
func (noContainers) Get(string) (*container.Container, error) { return nil, errNoContainers }
func (noContainers) List(container.ListOptions) ([]*container.Container, error) {
	return nil, errNoContainers
}
func (noContainers) Start(context.Context, string) error                   { return errNoContainers }
func (noContainers) Stop(context.Context, string, *time.Duration) error    { return errNoContainers }
func (noContainers) Restart(context.Context, string, *time.Duration) error { return errNoContainers }
func (noContainers) Kill(context.Context, string, syscall.Signal) error    { return errNoContainers }
func (noContainers) Remove(context.Context, string, bool, bool) error      { return errNoContainers }
func (noContainers) Resize(context.Context, string, uint16, uint16) error  { return errNoContainers }
func (noContainers) Wait(context.Context, string, string) (<-chan container.WaitResult, error) {
	return nil, errNoContainers
}
func (noContainers) Logs(context.Context, string, container.LogsOptions, func(jsonlog.Entry) error) error {
	return errNoContainers
}
func (noContainers) Attach(context.Context, string, container.AttachOptions) (container.AttachSession, error) {
	return nil, errNoContainers
}
func (noContainers) Exec(context.Context, string, container.ExecOptions) (container.ExecSession, error) {
	return nil, errNoContainers
}
func (noContainers) Subscribe() (<-chan container.Event, func()) { return nil, func() {} }
