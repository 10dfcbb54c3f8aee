package hcs

import (
	"fmt"

	"github.com/berth-dev/berth/guestagent/runtime/container"
)

// Errors of this package. ErrInvalidPath, ErrInvalidMount, ErrInvalidPort and ErrInvalidConfig also wrap
// container.ErrInvalid so the engine answers them with 400 Bad Request.
var (
	// ErrInvalidPath: a Windows path berth refuses (drive-relative, device, UNC, "..", …).
	ErrInvalidPath = fmt.Errorf("hcs: invalid Windows path: %w", container.ErrInvalid)
	// ErrInvalidMount: a -v bind that does not parse or is not allowed.
	ErrInvalidMount = fmt.Errorf("hcs: invalid mount: %w", container.ErrInvalid)
	// ErrInvalidPort: a port binding HNS NAT cannot publish.
	ErrInvalidPort = fmt.Errorf("hcs: invalid port binding: %w", container.ErrInvalid)
	// ErrInvalidConfig: a create request Windows containers cannot honour.
	ErrInvalidConfig = fmt.Errorf("hcs: invalid container config: %w", container.ErrInvalid)
	// ErrNotSupported: an operation the HCS backend does not implement; wraps container.ErrNotSupported
	// (503).
	ErrNotSupported = fmt.Errorf("hcs: %w", container.ErrNotSupported)
)
