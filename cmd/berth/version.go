package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/moby/moby/client"
	"github.com/urfave/cli/v2"
)

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print berth's version and build information, and the engine's when it is reachable",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "client", Usage: "print only the client's version"}},
		Action: func(c *cli.Context) error {
			w := c.App.Writer
			fmt.Fprintf(w, "berth %s\n", version)
			fmt.Fprintf(w, " commit:     %s\n", commit)
			fmt.Fprintf(w, " go:         %s\n", runtime.Version())
			fmt.Fprintf(w, " os/arch:    %s/%s\n", runtime.GOOS, runtime.GOARCH)
			if exe, err := os.Executable(); err == nil {
				if r, err := filepath.EvalSymlinks(exe); err == nil {
					exe = r
				}
				printVMImage(w, vmImageDirs(exe, runtime.GOARCH))
			}
			if c.Bool("client") {
				return nil
			}
			// The engine is optional here: `berth version` must work before
			// any instance exists (installers run it to check the install).
			host, err := engineHost(c)
			if err != nil {
				return nil
			}
			ctx, cancel := context.WithTimeout(c.Context, 3*time.Second)
			defer cancel()
			err = withClient(c, func(_ context.Context, cl *client.Client) error {
				v, err := cl.ServerVersion(ctx, client.ServerVersionOptions{})
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "engine %s (%s)\n", v.Version, host)
				fmt.Fprintf(w, " api:        %s (minimum %s)\n", v.APIVersion, v.MinAPIVersion)
				fmt.Fprintf(w, " os/arch:    %s/%s\n", v.Os, v.Arch)
				return nil
			})
			if err != nil {
				fmt.Fprintf(w, "engine: not reachable at %s\n", host)
			}
			return nil
		},
	}
}
