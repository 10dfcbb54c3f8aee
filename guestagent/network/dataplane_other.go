//go:build !linux

package network

// Bridges, veths and nftables exist only on Linux; elsewhere the package
// builds for its portable parts, and Open reports ErrUnsupported.

func newDataplane() (dataplane, error) { return nil, ErrUnsupported }

func newNetNS(string) error { return ErrUnsupported }

func deleteNetNS(string) error { return ErrUnsupported }
