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
		if msg := err.Error(); msg != "" {
			fmt.Fprintf(os.Stderr, "berth: %s\n", msg)
		}
		os.Exit(exitCodeOf(err))
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "berth",
		Usage:   "run containers in a small Linux VM, with a Docker-compatible API",
		Version: version,
		Flags:   globalFlags(),
		// Docker's short flags combine (-it, -dp 80:80).
		UseShortOptionHandling: true,
		ExitErrHandler:         func(*cli.Context, error) {},
		Commands:               commands(),
	}
}
