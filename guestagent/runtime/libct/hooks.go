package libct

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runHooks runs hooks in order with the state JSON on stdin and stops at the
// first failure.
func runHooks(ctx context.Context, kind string, hooks []specs.Hook, state []byte) error {
	for i, h := range hooks {
		if err := runHook(ctx, h, state); err != nil {
			return fmt.Errorf("%s hook #%d (%s): %w", kind, i, h.Path, err)
		}
	}
	return nil
}

// runHooksWarn runs every hook, logging the failures: poststart and
// poststop hooks must not stop the life cycle or the remaining hooks.
func runHooksWarn(ctx context.Context, log *slog.Logger, id, kind string, hooks []specs.Hook, state []byte) {
	for i, h := range hooks {
		if err := runHook(ctx, h, state); err != nil {
			log.Warn("hook failed", "container", id, "hook", kind, "index", i, "path", h.Path, "err", err)
		}
	}
}

// runHook runs one hook, bounded by its timeout.
func runHook(ctx context.Context, h specs.Hook, state []byte) error {
	if h.Timeout != nil {
		if *h.Timeout <= 0 {
			return fmt.Errorf("timeout %d is not positive: %w", *h.Timeout, ErrInvalidSpec)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, h.Path)
	if len(h.Args) > 0 {
		cmd.Args = h.Args
	}
	cmd.Env = h.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdin = bytes.NewReader(state)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w (output %q)", ctx.Err(), out.Bytes())
		}
		return fmt.Errorf("%w (output %q)", err, out.Bytes())
	}
	return nil
}
