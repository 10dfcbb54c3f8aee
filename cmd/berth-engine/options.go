// Command berth-engine is berth's container engine for Windows Server: the engine API (the Docker Engine API
// subset of guestagent/engine) over Windows containers (platform/hcs), served on the named pipe
// \\.\pipe\berth_engine. The installer registers it as the Windows service "berth":
//
//	berth-engine.exe serve --pipe \\.\pipe\berth_engine [--root DIR] [--isolation process|hyperv] [--debug]
//
// Started by the service control manager it runs as that service and logs to ROOT\berth-engine.log;
// started from a terminal it runs in the foreground, logs to stderr and stops on Ctrl+C. It is a binary of
// its own because cmd/berth must not link guestagent/ (cmd/berth/deps_test.go). On other systems it
// prints that it is for Windows Server only and exits 2.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Set with -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = "unknown"
)

// defaultPipe is hcs.PipeName, repeated here so that this file builds without platform/hcs on every OS.
const defaultPipe = `\\.\pipe\berth_engine`

// errUsage marks a command line that cannot be run (exit status 2); errFlags marks the errors of flag
// parsing, which the flag set has already written out (with the flags' help).
var (
	errUsage = errors.New("usage")
	errFlags = errors.New("flags")
)

// serveOptions are the flags of `berth-engine serve`.
type serveOptions struct {
	// Pipe is the named pipe to serve on; only defaultPipe is supported (hcs.ListenPipe).
	Pipe string
	// Root holds the engine's images, layers and containers.
	Root string
	// Isolation is "process" (default) or "hyperv".
	Isolation string
	// Debug logs at debug level.
	Debug bool
}

const usage = `usage: berth-engine serve [--pipe \\.\pipe\berth_engine] [--root DIR] [--isolation process|hyperv] [--debug]
       berth-engine version`

// defaultRoot is %ProgramData%\berth, with getenv reading the environment (C:\ProgramData when unset).
func defaultRoot(getenv func(string) string) string {
	pd := getenv("ProgramData")
	if pd == "" {
		pd = `C:\ProgramData`
	}
	return strings.TrimRight(pd, `\/`) + `\berth`
}

// parseServe parses the arguments after "serve", with root as the default --root. Errors wrap errUsage;
// flag errors (and -h, which wraps flag.ErrHelp) also wrap errFlags and have been written to out.
func parseServe(args []string, root string, out io.Writer) (serveOptions, error) {
	o := serveOptions{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.Pipe, "pipe", defaultPipe, "named pipe to serve the engine API on")
	fs.StringVar(&o.Root, "root", root, "directory for images, layers and containers")
	fs.StringVar(&o.Isolation, "isolation", "process", "container isolation: process or hyperv")
	fs.BoolVar(&o.Debug, "debug", false, "log at debug level")
	if err := fs.Parse(args); err != nil {
		return o, fmt.Errorf("%w: %w: %w", errUsage, errFlags, err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if !strings.EqualFold(o.Pipe, defaultPipe) {
		return o, fmt.Errorf("%w: --pipe %s: only %s is supported", errUsage, o.Pipe, defaultPipe)
	}
	if o.Root == "" {
		return o, fmt.Errorf("%w: --root is empty", errUsage)
	}
	switch o.Isolation {
	case "process", "hyperv":
	default:
		return o, fmt.Errorf("%w: --isolation %q: want process or hyperv", errUsage, o.Isolation)
	}
	return o, nil
}
