//go:build !linux

package qemu

// kvmUsable: KVM exists only on Linux.
func kvmUsable() bool { return false }

// tscKHz: not known without /proc; the guest then calibrates (TCG only: macOS uses HVF).
func tscKHz() int { return 0 }
