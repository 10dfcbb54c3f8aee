//go:build !windows

package hcs

import (
	"context"
	"fmt"
	"io"
	"net"
)

func newRuntime(RuntimeConfig) (Runtime, error) {
	return nil, fmt.Errorf("hcs runtime: %w (Windows only)", ErrNotSupported)
}

func importLayer(context.Context, io.Reader, string, []string) (int64, error) {
	return 0, fmt.Errorf("import layer: %w (Windows only)", ErrNotSupported)
}

func listenPipe(string) (net.Listener, error) {
	return nil, fmt.Errorf("listen on %s: %w (Windows only)", PipeName, ErrNotSupported)
}
