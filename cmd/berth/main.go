// Command berth is berth's host CLI: it manages berth instances (a small Linux
// VM, or a native engine on a Linux host) and talks to their Docker-compatible
// engine API.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// Set with -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	app := newApp()
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "berth: %v\n", err)
		if ec, ok := err.(cli.ExitCoder); ok {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "berth",
		Usage:   "run containers in a small Linux VM, with a Docker-compatible API",
		Version: version,
		Commands: []*cli.Command{
			versionCommand(),
		},
	}
}
