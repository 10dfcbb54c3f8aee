//go:build !linux

package archive

import (
	"context"
	"fmt"
	"io"
	"runtime"
)

func unpack(context.Context, string, io.Reader, Options, resolveMode) (Stats, error) {
	return Stats{}, fmt.Errorf("archive: unpack on %s: %w", runtime.GOOS, ErrUnsupported)
}

func apply(context.Context, string, io.Reader, Options, resolveMode) (Stats, error) {
	return Stats{}, fmt.Errorf("archive: apply on %s: %w", runtime.GOOS, ErrUnsupported)
}

func writeTar(context.Context, io.Writer, string, string, resolveMode) error {
	return fmt.Errorf("archive: write tar on %s: %w", runtime.GOOS, ErrUnsupported)
}
