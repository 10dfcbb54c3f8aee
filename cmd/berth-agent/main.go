//go:build linux

// Command berth-agent is berth's guest agent: the container engine that runs
// inside the VM (or, in native mode, directly on a Linux host). The same binary
// is re-executed as container init and as the per-container monitor (shim).
package main

import (
	"fmt"
	"log/slog"
	"os"
	"sort"

	"github.com/urfave/cli/v2"
)

// Set with -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = "unknown"
)

// commands is filled by the init functions of this package's files, one file
// per command family, so that each can grow without touching main.
var commands []*cli.Command

// reexecs maps a hidden argv[1] to the entry point of a re-executed helper
// (container init, shim). They run before any flag parsing: a container's
// start latency depends on it.
var reexecs = map[string]func() int{}

func main() {
	if code, ok := asInit(); ok {
		os.Exit(code)
	}
	if len(os.Args) > 1 {
		if run, ok := reexecs[os.Args[1]]; ok {
			os.Exit(run())
		}
	}
	sort.Slice(commands, func(i, j int) bool { return commands[i].Name < commands[j].Name })
	app := &cli.App{
		Name:     "berth-agent",
		Usage:    "berth's container engine and OCI runtime",
		Version:  version + " (commit " + commit + ")",
		Commands: commands,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "debug", Usage: "log at debug level", EnvVars: []string{"BERTH_DEBUG"}},
		},
		Before: func(c *cli.Context) error {
			level := slog.LevelInfo
			if c.Bool("debug") {
				level = slog.LevelDebug
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
			return nil
		},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "berth-agent: %v\n", err)
		os.Exit(exitCode(err))
	}
}

// exitCode lets a command choose its exit status (runc's CLI semantics) by
// returning a cli.ExitCoder; every other error exits 1.
func exitCode(err error) int {
	if ec, ok := err.(cli.ExitCoder); ok {
		return ec.ExitCode()
	}
	return 1
}
