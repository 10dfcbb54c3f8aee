package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

func imageCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name: "pull", Usage: "pull an image from a registry", ArgsUsage: "NAME[:TAG|@DIGEST]",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "suppress verbose output"},
				&cli.StringFlag{Name: "platform", Usage: "platform os/arch[/variant] (accepted for compatibility; the engine pulls its own)"},
			},
			Action: func(c *cli.Context) error {
				if err := needArgs(c, 1, "NAME[:TAG|@DIGEST]"); err != nil {
					return err
				}
				return withClient(c, func(ctx context.Context, cl *client.Client) error {
					return pullImage(ctx, cl, c.Args().First(), c.App.Writer, c.Bool("quiet"))
				})
			},
		},
		{
			Name: "images", Usage: "list images", ArgsUsage: "[REPOSITORY[:TAG]]",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "show all images"},
				&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "only show image IDs"},
				&cli.BoolFlag{Name: "no-trunc", Usage: "don't truncate output"},
			},
			Action: listImages,
		},
		{
			Name: "rmi", Usage: "remove one or more images", ArgsUsage: "IMAGE [IMAGE...]",
			Flags: []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "force removal of the image"}},
			Action: func(c *cli.Context) error {
				if err := needArgs(c, 1, "IMAGE [IMAGE...]"); err != nil {
					return err
				}
				return withClient(c, func(ctx context.Context, cl *client.Client) error {
					var failed []string
					for _, name := range c.Args().Slice() {
						res, err := cl.ImageRemove(ctx, name, client.ImageRemoveOptions{Force: c.Bool("force"), PruneChildren: true})
						if err != nil {
							failed = append(failed, err.Error())
							continue
						}
						for _, d := range res.Items {
							if d.Untagged != "" {
								fmt.Fprintln(c.App.Writer, "Untagged:", d.Untagged)
							}
							if d.Deleted != "" {
								fmt.Fprintln(c.App.Writer, "Deleted:", d.Deleted)
							}
						}
					}
					if len(failed) > 0 {
						return fmt.Errorf("%s", strings.Join(failed, "\n"))
					}
					return nil
				})
			},
		},
		{
			Name: "load", Usage: "load images from a tar archive (docker save or OCI archive) or STDIN",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "input", Aliases: []string{"i"}, Usage: "read from a tar archive file instead of STDIN"},
				&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "suppress the load output"},
			},
			Action: loadImages,
		},
		{
			Name: "save", Usage: "save images to a tar archive (streamed to STDOUT by default)", ArgsUsage: "IMAGE [IMAGE...]",
			Flags:  []cli.Flag{&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to a file instead of STDOUT"}},
			Action: saveImages,
		},
	}
}

// pullImage pulls ref and renders the progress stream.
func pullImage(ctx context.Context, cl *client.Client, ref string, out io.Writer, quiet bool) error {
	resp, err := cl.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return err
	}
	defer resp.Close()
	w := out
	if quiet {
		w = io.Discard
	}
	if err := newProgressPrinter(w, isTerminal(out)).run(resp.JSONMessages(ctx)); err != nil {
		return err
	}
	if quiet {
		fmt.Fprintln(out, ref)
	}
	return nil
}

func listImages(c *cli.Context) error {
	return withClient(c, func(ctx context.Context, cl *client.Client) error {
		opts := client.ImageListOptions{All: c.Bool("all")}
		if c.NArg() > 0 {
			opts.Filters = client.Filters{}.Add("reference", c.Args().First())
		}
		res, err := cl.ImageList(ctx, opts)
		if err != nil {
			return err
		}
		if c.Bool("quiet") {
			for _, img := range res.Items {
				fmt.Fprintln(c.App.Writer, shortID(img.ID, c.Bool("no-trunc")))
			}
			return nil
		}
		tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 3, ' ', 0)
		fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
		for _, img := range res.Items {
			created := units.HumanDuration(time.Since(time.Unix(img.Created, 0))) + " ago"
			size := units.HumanSizeWithPrecision(float64(img.Size), 3)
			id := shortID(img.ID, c.Bool("no-trunc"))
			if len(img.RepoTags) == 0 {
				fmt.Fprintf(tw, "<none>\t<none>\t%s\t%s\t%s\n", id, created, size)
			}
			for _, t := range img.RepoTags {
				repo, tag := splitTag(t)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", repo, tag, id, created, size)
			}
		}
		return tw.Flush()
	})
}

// splitTag splits "host:5000/app:1" into ("host:5000/app", "1").
func splitTag(ref string) (repo, tag string) {
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i], ref[i+1:]
	}
	return ref, "<none>"
}

// shortID is the 12-hex-digit form of an ID, as docker prints it.
func shortID(id string, noTrunc bool) string {
	if noTrunc {
		return id
	}
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

func loadImages(c *cli.Context) error {
	var in io.Reader = os.Stdin
	if p := c.String("input"); p != "" {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	} else if isTerminal(os.Stdin) {
		return fmt.Errorf("requested load from stdin, but stdin is empty")
	}
	return withClient(c, func(ctx context.Context, cl *client.Client) error {
		var opts []client.ImageLoadOption
		if c.Bool("quiet") {
			opts = append(opts, client.ImageLoadWithQuiet(true))
		}
		res, err := cl.ImageLoad(ctx, in, opts...)
		if err != nil {
			return err
		}
		defer res.Close()
		return newProgressPrinter(c.App.Writer, isTerminal(c.App.Writer)).run(jsonMessages(res))
	})
}

func saveImages(c *cli.Context) error {
	if err := needArgs(c, 1, "IMAGE [IMAGE...]"); err != nil {
		return err
	}
	out := c.App.Writer
	if p := c.String("output"); p != "" {
		f, err := os.CreateTemp(dirOf(p), ".berth-save-*")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		if err := saveTo(c, f); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		// Only a complete archive takes the name the user gave.
		return os.Rename(f.Name(), p)
	}
	if isTerminal(out) {
		return fmt.Errorf("cowardly refusing to save to a terminal. Use the -o flag or redirect")
	}
	return saveTo(c, out)
}

func saveTo(c *cli.Context, w io.Writer) error {
	return withClient(c, func(ctx context.Context, cl *client.Client) error {
		res, err := cl.ImageSave(ctx, c.Args().Slice())
		if err != nil {
			return err
		}
		defer res.Close()
		_, err = io.Copy(w, res)
		return err
	})
}

func dirOf(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[:i+1]
	}
	return "."
}

// jsonMessages decodes a JSON message stream.
func jsonMessages(r io.Reader) iter.Seq2[jsonstream.Message, error] {
	return func(yield func(jsonstream.Message, error) bool) {
		dec := json.NewDecoder(r)
		for {
			var m jsonstream.Message
			if err := dec.Decode(&m); err == io.EOF {
				return
			} else if !yield(m, err) || err != nil {
				return
			}
		}
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}
