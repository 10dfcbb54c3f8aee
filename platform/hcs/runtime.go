package hcs

import "log/slog"

// RuntimeConfig configures the Windows Runtime.
type RuntimeConfig struct {
	// LayerRoot is the windowsfilter directory holding image layers and scratch layers (one folder each).
	LayerRoot string
	// Network is the HNS network containers join; empty means "nat" (the NAT network Windows creates for
	// containers).
	Network string
	// Logger receives the runtime's logs; nil discards them.
	Logger *slog.Logger
}

// NewRuntime returns the Runtime that drives HCS and HNS through hcsshim. On other systems it returns an
// error wrapping ErrNotSupported.
func NewRuntime(cfg RuntimeConfig) (Runtime, error) { return newRuntime(cfg) }
