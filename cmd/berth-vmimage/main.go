// Command berth-vmimage builds and verifies berth's VM image (kernel,
// initramfs with berth-agent as /init, manifest) from Debian packages.
//
//	berth-vmimage build --arch amd64|arm64 --out DIR [--cache DIR] [--agent PATH]
//	berth-vmimage verify DIR
//	berth-vmimage instance --out FILE [--authorized-key FILE] [--host-key FILE] [--share TAG:TYPE:HOST[:GUEST]] …
//	berth-vmimage pack --out FILE [--compression gzip] DEST=SRC …   (a small cpio, e.g. a test /init)
//	berth-vmimage concat --out FILE ARCHIVE …                         (base initramfs + appended archives)
//
// Building needs a Debian-like machine (apt-get, apt-cache, xz); nothing is
// installed. See vmimage/README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/vmimage"
	"github.com/berth-dev/berth/vmimage/initramfs"
	"github.com/berth-dev/berth/vmimage/instance"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := newApp().RunContext(ctx, os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "berth-vmimage: %v\n", err)
		stop()
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:  "berth-vmimage",
		Usage: "build and verify berth's VM image",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "debug", Usage: "log at debug level"},
		},
		Commands: []*cli.Command{buildCommand(), verifyCommand(), instanceCommand(), packCommand(), concatCommand()},
	}
}

func logger(c *cli.Context) *slog.Logger {
	level := slog.LevelInfo
	if c.Bool("debug") {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
}

func buildCommand() *cli.Command {
	return &cli.Command{
		Name:  "build",
		Usage: "build the image for one architecture into a directory",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "arch", Value: "amd64", Usage: "VM architecture: amd64 or arm64"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "output directory"},
			&cli.StringFlag{Name: "cache", Usage: "download/extraction cache (default: OUT/../.berth-vmimage-cache)"},
			&cli.StringFlag{Name: "agent", Usage: "static linux berth-agent for ARCH (default: build ./cmd/berth-agent)"},
			&cli.StringFlag{Name: "source", Value: ".", Usage: "berth source tree for the agent build"},
			&cli.StringFlag{Name: "compression", Value: string(initramfs.None), Usage: "initramfs compression: none (fastest boot: the kernel unpacks a zstd one ~100 ms slower under TCG), zstd or gzip"},
			&cli.BoolFlag{Name: "offline", Usage: "do not refresh package lists when the cache has some"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("build: unexpected arguments %v", c.Args().Slice())
			}
			m, err := vmimage.Build(c.Context, vmimage.Options{
				Arch: c.String("arch"), Out: c.String("out"), Cache: c.String("cache"),
				Agent: c.String("agent"), SourceDir: c.String("source"),
				Compression: initramfs.Compression(c.String("compression")), Offline: c.Bool("offline"),
				Logger: logger(c),
			})
			if err != nil {
				return err
			}
			printSummary(c, c.String("out"), m)
			return nil
		},
	}
}

func printSummary(c *cli.Context, dir string, m *vmimage.Manifest) {
	w := c.App.Writer
	fmt.Fprintf(w, "%s: %s kernel %s, %d modules, boot %s -kernel %s\n", dir, m.Arch, m.KernelRelease, len(m.Modules), m.Boot.Machine, m.Boot.Kernel)
	for _, n := range sortedKeys(m.Artifacts) {
		a := m.Artifacts[n]
		fmt.Fprintf(w, "  %-22s %-15s %10d  sha256:%s\n", n, a.Kind, a.Size, a.SHA256)
	}
}

func sortedKeys(m map[string]vmimage.Artifact) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	for i := 1; i < len(ks); i++ {
		for j := i; j > 0 && ks[j] < ks[j-1]; j-- {
			ks[j], ks[j-1] = ks[j-1], ks[j]
		}
	}
	return ks
}

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "re-hash an image directory's artifacts against its manifest",
		ArgsUsage: "DIR",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("verify: want exactly one image directory")
			}
			m, err := vmimage.Verify(c.Args().First())
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "ok: %d artifacts match %s\n", len(m.Artifacts), vmimage.ManifestName)
			return nil
		},
	}
}

func instanceCommand() *cli.Command {
	return &cli.Command{
		Name:  "instance",
		Usage: "write a per-instance config cpio (append it to the initramfs)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Required: true, Usage: "output file (gzip'd cpio)"},
			&cli.StringFlag{Name: "name", Value: "default", Usage: "instance name"},
			&cli.StringSliceFlag{Name: "authorized-key", Usage: "file with SSH public keys (repeatable)"},
			&cli.StringFlag{Name: "host-key", Usage: "file with the guest's SSH host private key (PEM)"},
			&cli.StringSliceFlag{Name: "share", Usage: "TAG:TYPE:HOSTPATH[:GUESTPATH] (TYPE 9p or virtiofs; repeatable)"},
			&cli.IntFlag{Name: "cpus", Usage: "VM CPUs"},
			&cli.IntFlag{Name: "memory", Usage: "VM memory in MiB"},
		},
		Action: func(c *cli.Context) error {
			cfg := instance.Config{Name: c.String("name"), CPUs: c.Int("cpus"), MemoryMiB: c.Int("memory")}
			for _, f := range c.StringSlice("authorized-key") {
				b, err := os.ReadFile(f)
				if err != nil {
					return fmt.Errorf("authorized key: %w", err)
				}
				for _, l := range strings.Split(string(b), "\n") {
					if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
						cfg.AuthorizedKeys = append(cfg.AuthorizedKeys, l)
					}
				}
			}
			if f := c.String("host-key"); f != "" {
				b, err := os.ReadFile(f)
				if err != nil {
					return fmt.Errorf("host key: %w", err)
				}
				cfg.HostKey = b
			}
			for _, s := range c.StringSlice("share") {
				sh, err := parseShare(s)
				if err != nil {
					return err
				}
				cfg.Shares = append(cfg.Shares, sh)
			}
			b, err := instance.Archive(cfg)
			if err != nil {
				return err
			}
			return os.WriteFile(c.String("out"), b, 0o600)
		},
	}
}

// parseShare parses TAG:TYPE:HOSTPATH[:GUESTPATH].
func parseShare(s string) (instance.Share, error) {
	f := strings.SplitN(s, ":", 4)
	if len(f) < 3 {
		return instance.Share{}, fmt.Errorf("share %q: want TAG:TYPE:HOSTPATH[:GUESTPATH]", s)
	}
	sh := instance.Share{Tag: f[0], Type: f[1], HostPath: f[2], GuestPath: f[2]}
	if len(f) == 4 {
		sh.GuestPath = f[3]
	}
	return sh, nil
}

func packCommand() *cli.Command {
	return &cli.Command{
		Name:      "pack",
		Usage:     "write a cpio of host files (DEST=SRC; executables keep mode 0755, others 0644)",
		ArgsUsage: "DEST=SRC …",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Required: true, Usage: "output file"},
			&cli.StringFlag{Name: "compression", Value: string(initramfs.Gzip), Usage: "zstd, gzip or none"},
		},
		Action: func(c *cli.Context) error {
			a := initramfs.New()
			for _, arg := range c.Args().Slice() {
				dst, src, ok := strings.Cut(arg, "=")
				if !ok {
					return fmt.Errorf("pack: %q is not DEST=SRC", arg)
				}
				b, err := os.ReadFile(src)
				if err != nil {
					return fmt.Errorf("pack: %w", err)
				}
				st, err := os.Stat(src)
				if err != nil {
					return fmt.Errorf("pack: %w", err)
				}
				perm := os.FileMode(0o644)
				if st.Mode()&0o111 != 0 {
					perm = 0o755
				}
				if err := a.File(dst, perm, b); err != nil {
					return err
				}
			}
			b, err := a.Bytes(initramfs.Compression(c.String("compression")))
			if err != nil {
				return err
			}
			return os.WriteFile(c.String("out"), b, 0o644)
		},
	}
}

func concatCommand() *cli.Command {
	return &cli.Command{
		Name:      "concat",
		Usage:     "concatenate initramfs archives with the padding the kernel expects",
		ArgsUsage: "ARCHIVE …",
		Flags:     []cli.Flag{&cli.StringFlag{Name: "out", Required: true, Usage: "output file"}},
		Action: func(c *cli.Context) error {
			var parts []io.Reader
			for _, p := range c.Args().Slice() {
				f, err := os.Open(p)
				if err != nil {
					return fmt.Errorf("concat: %w", err)
				}
				defer f.Close()
				parts = append(parts, f)
			}
			out, err := os.Create(c.String("out"))
			if err != nil {
				return fmt.Errorf("concat: %w", err)
			}
			if err := initramfs.Concat(out, parts...); err != nil {
				out.Close()
				return err
			}
			return out.Close()
		},
	}
}
