package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/go-units"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/urfave/cli/v2"
)

func containerCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name: "ps", Usage: "list containers",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "show all containers (default shows just running)"},
				&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only display container IDs"},
				&cli.BoolFlag{Name: "no-trunc", Usage: "don't truncate output"},
				&cli.StringSliceFlag{Name: "filter", Aliases: []string{"f"}, Usage: "filter output (key=value)"},
			},
			Action: listContainers,
		},
		{
			Name: "logs", Usage: "fetch the logs of a container", ArgsUsage: "CONTAINER",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "follow log output"},
				&cli.StringFlag{Name: "tail", Aliases: []string{"n"}, Value: "all", Usage: "number of lines to show from the end of the logs"},
				&cli.BoolFlag{Name: "timestamps", Aliases: []string{"t"}, Usage: "show timestamps"},
				&cli.StringFlag{Name: "since", Usage: "show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)"},
				&cli.StringFlag{Name: "until", Usage: "show logs before a timestamp or relative time"},
			},
			Action: containerLogs,
		},
		{
			Name: "stop", Usage: "stop one or more running containers", ArgsUsage: "CONTAINER [CONTAINER...]",
			Flags: []cli.Flag{
				&cli.IntFlag{Name: "timeout", Aliases: []string{"t", "time"}, Value: -1, Usage: "seconds to wait before killing the container"},
				&cli.StringFlag{Name: "signal", Aliases: []string{"s"}, Usage: "signal to send to the container"},
			},
			Action: forEachContainer("stop", func(ctx context.Context, c *cli.Context, cl *client.Client, id string) error {
				opts := client.ContainerStopOptions{Signal: c.String("signal")}
				if t := c.Int("timeout"); t >= 0 {
					opts.Timeout = &t
				}
				_, err := cl.ContainerStop(ctx, id, opts)
				return err
			}),
		},
		{
			Name: "kill", Usage: "kill one or more running containers", ArgsUsage: "CONTAINER [CONTAINER...]",
			Flags: []cli.Flag{&cli.StringFlag{Name: "signal", Aliases: []string{"s"}, Usage: "signal to send to the container (default KILL)"}},
			Action: forEachContainer("kill", func(ctx context.Context, c *cli.Context, cl *client.Client, id string) error {
				_, err := cl.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: c.String("signal")})
				return err
			}),
		},
		{
			Name: "rm", Usage: "remove one or more containers", ArgsUsage: "CONTAINER [CONTAINER...]",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "force the removal of a running container (uses SIGKILL)"},
				&cli.BoolFlag{Name: "volumes", Aliases: []string{"v"}, Usage: "remove anonymous volumes associated with the container"},
			},
			Action: forEachContainer("rm", func(ctx context.Context, c *cli.Context, cl *client.Client, id string) error {
				_, err := cl.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: c.Bool("force"), RemoveVolumes: c.Bool("volumes")})
				return err
			}),
		},
		{
			Name: "inspect", Usage: "return low-level information on containers or images", ArgsUsage: "NAME|ID [NAME|ID...]",
			Flags:  []cli.Flag{&cli.StringFlag{Name: "type", Usage: "only inspect objects of this type (container or image)"}},
			Action: inspect,
		},
		{
			Name: "cp", Usage: "copy files between a container and the local filesystem",
			ArgsUsage: "CONTAINER:SRC_PATH DEST_PATH|-\n   berth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
			Action:    copyFiles,
		},
	}
}

// forEachContainer runs f for every named container, printing each name on
// success and collecting failures as docker does.
func forEachContainer(verb string, f func(ctx context.Context, c *cli.Context, cl *client.Client, id string) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if err := needArgs(c, 1, "CONTAINER [CONTAINER...]"); err != nil {
			return err
		}
		return withClient(c, func(ctx context.Context, cl *client.Client) error {
			var failed []string
			for _, id := range c.Args().Slice() {
				if err := f(ctx, c, cl, id); err != nil {
					failed = append(failed, err.Error())
					continue
				}
				fmt.Fprintln(c.App.Writer, id)
			}
			if len(failed) > 0 {
				return errors.New(strings.Join(failed, "\n"))
			}
			return nil
		})
	}
}

func listContainers(c *cli.Context) error {
	return withClient(c, func(ctx context.Context, cl *client.Client) error {
		opts := client.ContainerListOptions{All: c.Bool("all"), Filters: client.Filters{}}
		for _, f := range c.StringSlice("filter") {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				return fmt.Errorf("bad format of filter (expected name=value): %s", f)
			}
			opts.Filters.Add(k, v)
		}
		res, err := cl.ContainerList(ctx, opts)
		if err != nil {
			return err
		}
		noTrunc := c.Bool("no-trunc")
		if c.Bool("quiet") {
			for _, ct := range res.Items {
				fmt.Fprintln(c.App.Writer, shortID(ct.ID, noTrunc))
			}
			return nil
		}
		tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 3, ' ', 0)
		fmt.Fprintln(tw, "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES")
		for _, ct := range res.Items {
			cmd := ct.Command
			if !noTrunc && len(cmd) > 20 {
				cmd = cmd[:19] + "…"
			}
			names := make([]string, len(ct.Names))
			for i, n := range ct.Names {
				names[i] = strings.TrimPrefix(n, "/")
			}
			fmt.Fprintf(tw, "%s\t%s\t%q\t%s\t%s\t%s\t%s\n", shortID(ct.ID, noTrunc), ct.Image, cmd,
				units.HumanDuration(time.Since(time.Unix(ct.Created, 0)))+" ago", ct.Status, formatPorts(ct.Ports), strings.Join(names, ","))
		}
		return tw.Flush()
	})
}

// formatPorts renders published ports as docker ps does.
func formatPorts(ports []container.PortSummary) string {
	var out []string
	for _, p := range ports {
		if p.PublicPort == 0 {
			out = append(out, fmt.Sprintf("%d/%s", p.PrivatePort, p.Type))
			continue
		}
		ip := "0.0.0.0"
		if p.IP.IsValid() {
			ip = p.IP.String()
			if p.IP.Is6() {
				ip = "[" + ip + "]"
			}
		}
		out = append(out, fmt.Sprintf("%s:%d->%d/%s", ip, p.PublicPort, p.PrivatePort, p.Type))
	}
	return strings.Join(out, ", ")
}

func containerLogs(c *cli.Context) error {
	if err := needArgs(c, 1, "CONTAINER"); err != nil {
		return err
	}
	return withClient(c, func(ctx context.Context, cl *client.Client) error {
		id := c.Args().First()
		ins, err := cl.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return err
		}
		rc, err := cl.ContainerLogs(ctx, id, client.ContainerLogsOptions{
			ShowStdout: true, ShowStderr: true, Follow: c.Bool("follow"), Tail: c.String("tail"),
			Timestamps: c.Bool("timestamps"), Since: c.String("since"), Until: c.String("until"),
		})
		if err != nil {
			return err
		}
		defer rc.Close()
		if ins.Container.Config != nil && ins.Container.Config.Tty {
			_, err = io.Copy(c.App.Writer, rc)
		} else {
			_, err = stdcopy.StdCopy(c.App.Writer, c.App.ErrWriter, rc)
		}
		return err
	})
}

func inspect(c *cli.Context) error {
	if err := needArgs(c, 1, "NAME|ID [NAME|ID...]"); err != nil {
		return err
	}
	kind := c.String("type")
	if kind != "" && kind != "container" && kind != "image" {
		return fmt.Errorf("%q is not a valid value for --type", kind)
	}
	return withClient(c, func(ctx context.Context, cl *client.Client) error {
		var out []json.RawMessage
		var failed []string
		for _, name := range c.Args().Slice() {
			raw, err := inspectOne(ctx, cl, kind, name)
			if err != nil {
				failed = append(failed, err.Error())
				continue
			}
			out = append(out, raw)
		}
		if out == nil {
			out = []json.RawMessage{}
		}
		b, err := json.MarshalIndent(out, "", "    ")
		if err != nil {
			return err
		}
		fmt.Fprintln(c.App.Writer, string(b))
		if len(failed) > 0 {
			return errors.New(strings.Join(failed, "\n"))
		}
		return nil
	})
}

// inspectOne tries a container, then an image, as docker inspect does.
func inspectOne(ctx context.Context, cl *client.Client, kind, name string) (json.RawMessage, error) {
	if kind != "image" {
		res, err := cl.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
		if err == nil {
			return res.Raw, nil
		}
		if kind == "container" {
			return nil, err
		}
	}
	res, err := cl.ImageInspect(ctx, name)
	if err != nil {
		if kind == "" {
			return nil, fmt.Errorf("no such object: %s", name)
		}
		return nil, err
	}
	return json.Marshal(res.InspectResponse)
}

// containerPath splits "CONTAINER:PATH"; a path with a slash or dot before
// the colon (./a:b, /x:y) is local, as in docker cp.
func containerPath(arg string) (ctr, path string, ok bool) {
	if strings.HasPrefix(arg, "/") || strings.HasPrefix(arg, ".") {
		return "", arg, false
	}
	ctr, path, ok = strings.Cut(arg, ":")
	if !ok || ctr == "" {
		return "", arg, false
	}
	return ctr, path, true
}

func copyFiles(c *cli.Context) error {
	if c.NArg() != 2 {
		return fmt.Errorf("%q requires exactly 2 arguments", "cp")
	}
	srcCtr, src, srcIn := containerPath(c.Args().Get(0))
	dstCtr, dst, dstIn := containerPath(c.Args().Get(1))
	switch {
	case srcIn && dstIn:
		return errors.New("copying between containers is not supported")
	case !srcIn && !dstIn:
		return errors.New("must specify at least one container source")
	}
	return withClient(c, func(ctx context.Context, cl *client.Client) error {
		if srcIn {
			return copyFromContainer(ctx, cl, srcCtr, src, dst, c.App.Writer)
		}
		return copyToContainer(ctx, cl, src, dstCtr, dst)
	})
}

func copyFromContainer(ctx context.Context, cl *client.Client, ctr, src, dst string, stdout io.Writer) error {
	if src == "" {
		src = "/"
	}
	res, err := cl.CopyFromContainer(ctx, ctr, client.CopyFromContainerOptions{SourcePath: src})
	if err != nil {
		return err
	}
	defer res.Content.Close()
	if dst == "-" {
		_, err = io.Copy(stdout, res.Content)
		return err
	}
	return extractCopy(res.Content, res.Stat.Name, dst)
}

func copyToContainer(ctx context.Context, cl *client.Client, src, ctr, dst string) error {
	if dst == "" {
		dst = "/"
	}
	if src == "-" {
		_, err := cl.CopyToContainer(ctx, ctr, client.CopyToContainerOptions{DestinationPath: dst, Content: os.Stdin})
		return err
	}
	// Into an existing directory: keep the source's name. Otherwise the
	// upload lands in dst's parent under dst's name.
	dir, name := dst, ""
	st, err := cl.ContainerStatPath(ctx, ctr, client.ContainerStatPathOptions{Path: dst})
	switch {
	case err == nil && st.Stat.Mode.IsDir():
	case err == nil || isNotFound(err):
		dir, name = splitContainerPath(dst)
	default:
		return err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeCopyTar(pw, src, name)) }()
	_, err = cl.CopyToContainer(ctx, ctr, client.CopyToContainerOptions{DestinationPath: dir, Content: pr})
	pr.CloseWithError(err)
	return err
}

// splitContainerPath splits a container path (always slash-separated).
func splitContainerPath(p string) (dir, name string) {
	p = strings.TrimRight(p, "/")
	i := strings.LastIndex(p, "/")
	if i < 0 {
		return ".", p
	}
	if i == 0 {
		return "/", p[1:]
	}
	return p[:i], p[i+1:]
}

func isNotFound(err error) bool {
	return cerrdefs.IsNotFound(err)
}
