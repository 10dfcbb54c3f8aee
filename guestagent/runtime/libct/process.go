package libct

import (
	"errors"
	"fmt"
	"syscall"
)

// errNotChild reports Wait on a Process that this process did not start.
var errNotChild = errors.New("libct: process is not a child of this process")

func (p *Process) wait() (syscall.WaitStatus, error) {
	var zero syscall.WaitStatus
	if p == nil || p.proc == nil {
		return zero, errNotChild
	}
	ps, err := p.proc.Wait()
	if err != nil {
		return zero, fmt.Errorf("wait for pid %d: %w", p.Pid, err)
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok {
		return zero, fmt.Errorf("wait for pid %d: unexpected status %T", p.Pid, ps.Sys())
	}
	return ws, nil
}
