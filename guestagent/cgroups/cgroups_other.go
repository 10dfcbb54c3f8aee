//go:build !linux

package cgroups

// Control groups exist only on Linux; elsewhere the package builds so that
// callers need no build tags, and reports Unavailable.

func detect() Mode { return Unavailable }

func newManager(string) (Manager, error) { return nil, ErrUnavailable }
