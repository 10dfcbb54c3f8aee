//go:build !linux

package container

import (
	"context"
	"fmt"
	"log/slog"
)

type execLauncher struct {
	binary string
	log    *slog.Logger
}

func (l *execLauncher) Launch(ctx context.Context, dir string) (int, error) {
	return 0, fmt.Errorf("launch shim: %w", ErrNotSupported)
}
