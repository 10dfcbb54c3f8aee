//go:build !windows

package hcs

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/berth-dev/berth/guestagent/runtime/container"
)

// Off Windows the backend constructors fail cleanly, with the 503 class.
func TestWindowsOnlyParts(t *testing.T) {
	if _, err := NewRuntime(RuntimeConfig{LayerRoot: t.TempDir()}); !errors.Is(err, container.ErrNotSupported) {
		t.Errorf("NewRuntime: %v", err)
	}
	if _, err := NewEngine(EngineConfig{Root: t.TempDir()}); !errors.Is(err, ErrNotSupported) {
		t.Errorf("NewEngine: %v", err)
	}
	if l, err := ListenPipe(); !errors.Is(err, ErrNotSupported) {
		if l != nil {
			l.Close()
		}
		t.Errorf("ListenPipe: %v", err)
	}
	if _, err := ImportLayer(context.Background(), strings.NewReader(""), t.TempDir(), nil); !errors.Is(err, ErrNotSupported) {
		t.Errorf("ImportLayer: %v", err)
	}
}
