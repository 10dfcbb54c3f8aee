package main

import (
	"context"
	"fmt"

	"github.com/docker/go-units"
	"github.com/moby/moby/client"
	"github.com/urfave/cli/v2"
)

func infoCommand() *cli.Command {
	return &cli.Command{
		Name:  "info",
		Usage: "display engine-wide information",
		Action: func(c *cli.Context) error {
			return withClient(c, func(ctx context.Context, cl *client.Client) error {
				res, err := cl.Info(ctx, client.InfoOptions{})
				if err != nil {
					return err
				}
				i := res.Info
				w := c.App.Writer
				host, _ := engineHost(c)
				fmt.Fprintf(w, "Engine:         %s\n", host)
				fmt.Fprintf(w, " Server Version: %s\n", i.ServerVersion)
				fmt.Fprintf(w, " Containers:     %d (running %d, paused %d, stopped %d)\n", i.Containers, i.ContainersRunning, i.ContainersPaused, i.ContainersStopped)
				fmt.Fprintf(w, " Images:         %d\n", i.Images)
				fmt.Fprintf(w, " Storage Driver: %s\n", i.Driver)
				fmt.Fprintf(w, " Cgroup Driver:  %s (v%s)\n", i.CgroupDriver, i.CgroupVersion)
				fmt.Fprintf(w, " Kernel Version: %s\n", i.KernelVersion)
				fmt.Fprintf(w, " Operating System: %s\n", i.OperatingSystem)
				fmt.Fprintf(w, " OSType/Arch:    %s/%s\n", i.OSType, i.Architecture)
				fmt.Fprintf(w, " CPUs:           %d\n", i.NCPU)
				fmt.Fprintf(w, " Total Memory:   %s\n", units.BytesSize(float64(i.MemTotal)))
				fmt.Fprintf(w, " Name:           %s\n", i.Name)
				fmt.Fprintf(w, " Root Dir:       %s\n", i.DockerRootDir)
				return nil
			})
		},
	}
}
