package main

import (
	"fmt"
	"runtime"

	"github.com/urfave/cli/v2"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print berth's version and build information",
		Action: func(c *cli.Context) error {
			w := c.App.Writer
			fmt.Fprintf(w, "berth %s\n", version)
			fmt.Fprintf(w, " commit:     %s\n", commit)
			fmt.Fprintf(w, " go:         %s\n", runtime.Version())
			fmt.Fprintf(w, " os/arch:    %s/%s\n", runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
