//go:build !unix

package transport

import "time"

// processCPU is not measured here.
func processCPU() time.Duration { return 0 }
