package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/go-units"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

func runCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name: "run", Usage: "create and run a new container from an image", ArgsUsage: "IMAGE [COMMAND] [ARG...]",
			Flags:  runFlags(),
			Action: runContainer,
		},
		{
			Name: "exec", Usage: "execute a command in a running container", ArgsUsage: "CONTAINER COMMAND [ARG...]",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "detached mode: run command in the background"},
				&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "keep STDIN open even if not attached"},
				&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "allocate a pseudo-TTY"},
				&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set environment variables"},
				&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "username or UID (format: <name|uid>[:<group|gid>])"},
				&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, Usage: "working directory inside the container"},
			},
			Action: execContainer,
		},
	}
}

func runFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "run container in background and print container ID"},
		&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "keep STDIN open even if not attached"},
		&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "allocate a pseudo-TTY"},
		&cli.BoolFlag{Name: "rm", Usage: "automatically remove the container when it exits"},
		&cli.StringSliceFlag{Name: "publish", Aliases: []string{"p"}, Usage: "publish a container's port(s) to the host ([ip:]hostPort:containerPort[/proto])"},
		&cli.StringSliceFlag{Name: "volume", Aliases: []string{"v"}, Usage: "bind mount a volume (hostPath:containerPath[:ro])"},
		&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set environment variables"},
		&cli.StringSliceFlag{Name: "label", Aliases: []string{"l"}, Usage: "set meta data on a container"},
		&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "username or UID (format: <name|uid>[:<group|gid>])"},
		&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, Usage: "working directory inside the container"},
		&cli.StringFlag{Name: "name", Usage: "assign a name to the container"},
		&cli.StringFlag{Name: "hostname", Usage: "container host name"},
		&cli.StringFlag{Name: "entrypoint", Usage: "overwrite the default ENTRYPOINT of the image"},
		&cli.StringFlag{Name: "memory", Aliases: []string{"m"}, Usage: "memory limit (e.g. 512m, 1g)"},
		&cli.StringFlag{Name: "cpus", Usage: "number of CPUs (e.g. 1.5)"},
		&cli.Int64Flag{Name: "pids-limit", Usage: "tune container pids limit (-1 for unlimited)"},
		&cli.StringFlag{Name: "restart", Value: "no", Usage: "restart policy: no, always, on-failure[:max-retries], unless-stopped"},
		&cli.StringFlag{Name: "network", Aliases: []string{"net"}, Usage: "connect a container to a network (bridge, host, none)"},
		&cli.BoolFlag{Name: "read-only", Usage: "mount the container's root filesystem as read only"},
	}
}

// createRequest turns run's flags and arguments into the create call.
func createRequest(c *cli.Context, cwd string, getenv func(string) (string, bool)) (client.ContainerCreateOptions, error) {
	args := c.Args().Slice()
	if len(args) == 0 {
		return client.ContainerCreateOptions{}, fmt.Errorf("%q requires at least 1 argument\nUsage: berth run [OPTIONS] IMAGE [COMMAND] [ARG...]", "run")
	}
	cfg := &container.Config{
		Image:        args[0],
		Cmd:          args[1:],
		Tty:          c.Bool("tty"),
		OpenStdin:    c.Bool("interactive"),
		StdinOnce:    c.Bool("interactive") && !c.Bool("detach"),
		AttachStdin:  c.Bool("interactive") && !c.Bool("detach"),
		AttachStdout: !c.Bool("detach"),
		AttachStderr: !c.Bool("detach"),
		User:         c.String("user"),
		WorkingDir:   c.String("workdir"),
		Hostname:     c.String("hostname"),
		Env:          expandEnv(c.StringSlice("env"), getenv),
		Labels:       map[string]string{},
	}
	if len(cfg.Cmd) == 0 {
		cfg.Cmd = nil
	}
	if c.IsSet("entrypoint") {
		ep := c.String("entrypoint")
		cfg.Entrypoint = []string{}
		if ep != "" {
			cfg.Entrypoint = []string{ep}
		}
	}
	for _, l := range c.StringSlice("label") {
		k, v, _ := strings.Cut(l, "=")
		cfg.Labels[k] = v
	}
	hc := &container.HostConfig{AutoRemove: c.Bool("rm"), ReadonlyRootfs: c.Bool("read-only")}
	if n := c.String("network"); n != "" {
		hc.NetworkMode = container.NetworkMode(n)
	}
	binds, err := parseVolumes(c.StringSlice("volume"), cwd)
	if err != nil {
		return client.ContainerCreateOptions{}, err
	}
	hc.Binds = binds
	exposed, bindings, err := parsePublish(c.StringSlice("publish"))
	if err != nil {
		return client.ContainerCreateOptions{}, err
	}
	cfg.ExposedPorts, hc.PortBindings = exposed, bindings
	if m := c.String("memory"); m != "" {
		n, err := units.RAMInBytes(m)
		if err != nil || n <= 0 {
			return client.ContainerCreateOptions{}, fmt.Errorf("invalid argument %q for \"-m, --memory\" flag", m)
		}
		hc.Memory = n
	}
	if s := c.String("cpus"); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f <= 0 {
			return client.ContainerCreateOptions{}, fmt.Errorf("invalid argument %q for \"--cpus\" flag", s)
		}
		hc.NanoCPUs = int64(f * 1e9)
	}
	if c.IsSet("pids-limit") {
		n := c.Int64("pids-limit")
		hc.PidsLimit = &n
	}
	rp, err := parseRestart(c.String("restart"))
	if err != nil {
		return client.ContainerCreateOptions{}, err
	}
	hc.RestartPolicy = rp
	if hc.AutoRemove && rp.Name != container.RestartPolicyDisabled && rp.Name != "" {
		return client.ContainerCreateOptions{}, errors.New("conflicting options: cannot specify both --restart and --rm")
	}
	return client.ContainerCreateOptions{Config: cfg, HostConfig: hc, Name: c.String("name")}, nil
}

// expandEnv resolves "-e KEY" (no value) from the local environment and
// drops it when unset, as docker does.
func expandEnv(env []string, getenv func(string) (string, bool)) []string {
	var out []string
	for _, e := range env {
		if strings.Contains(e, "=") {
			out = append(out, e)
			continue
		}
		if v, ok := getenv(e); ok {
			out = append(out, e+"="+v)
		}
	}
	return out
}

// parseVolumes makes relative host paths ("./data:/data") absolute.
func parseVolumes(vols []string, cwd string) ([]string, error) {
	var out []string
	for _, v := range vols {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("invalid volume specification: %q (want hostPath:containerPath[:ro|rw])", v)
		}
		src := parts[0]
		if strings.HasPrefix(src, ".") {
			src = filepath.Join(cwd, src)
		} else if !filepath.IsAbs(src) && !strings.HasPrefix(src, "/") {
			return nil, fmt.Errorf("invalid volume specification: %q: named volumes are not supported yet; give an absolute or ./relative host path", v)
		}
		if !strings.HasPrefix(parts[1], "/") {
			return nil, fmt.Errorf("invalid volume specification: %q: container path must be absolute", v)
		}
		parts[0] = src
		out = append(out, strings.Join(parts, ":"))
	}
	return out, nil
}

// parsePublish parses -p values: [ip:][hostPort[-end]:]containerPort[-end][/proto].
func parsePublish(specs []string) (network.PortSet, network.PortMap, error) {
	exposed, bindings := network.PortSet{}, network.PortMap{}
	for _, spec := range specs {
		proto := "tcp"
		if i := strings.LastIndex(spec, "/"); i >= 0 {
			proto = spec[i+1:]
			spec = spec[:i]
		}
		var ip, hostPart, ctrPart string
		if strings.HasPrefix(spec, "[") { // [v6]:host:ctr
			end := strings.Index(spec, "]")
			if end < 0 {
				return nil, nil, fmt.Errorf("invalid publish spec %q", spec)
			}
			ip = spec[1:end]
			rest := strings.TrimPrefix(spec[end+1:], ":")
			hostPart, ctrPart, _ = strings.Cut(rest, ":")
		} else {
			parts := strings.Split(spec, ":")
			switch len(parts) {
			case 1:
				ctrPart = parts[0]
			case 2:
				hostPart, ctrPart = parts[0], parts[1]
			case 3:
				ip, hostPart, ctrPart = parts[0], parts[1], parts[2]
			default:
				return nil, nil, fmt.Errorf("invalid publish spec %q", spec)
			}
		}
		var addr netip.Addr
		if ip != "" {
			a, err := netip.ParseAddr(ip)
			if err != nil {
				return nil, nil, fmt.Errorf("invalid IP address %q in publish spec: %w", ip, err)
			}
			addr = a
		}
		cStart, cEnd, err := portRange(ctrPart)
		if err != nil {
			return nil, nil, fmt.Errorf("invalid containerPort in %q: %w", spec, err)
		}
		hStart, hEnd := 0, 0
		if hostPart != "" {
			if hStart, hEnd, err = portRange(hostPart); err != nil {
				return nil, nil, fmt.Errorf("invalid hostPort in %q: %w", spec, err)
			}
			if hEnd-hStart != cEnd-cStart && hEnd != hStart {
				return nil, nil, fmt.Errorf("invalid ranges in %q: host and container ranges differ in size", spec)
			}
		}
		for i := 0; i <= cEnd-cStart; i++ {
			p, err := network.ParsePort(fmt.Sprintf("%d/%s", cStart+i, proto))
			if err != nil {
				return nil, nil, fmt.Errorf("invalid publish spec %q: %w", spec, err)
			}
			exposed[p] = struct{}{}
			hp := ""
			if hStart != 0 {
				hp = strconv.Itoa(hStart + i)
				if hEnd == hStart {
					hp = strconv.Itoa(hStart)
				}
			}
			bindings[p] = append(bindings[p], network.PortBinding{HostIP: addr, HostPort: hp})
		}
	}
	return exposed, bindings, nil
}

func portRange(s string) (int, int, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.Atoi(lo)
	if err != nil || a < 1 || a > 65535 {
		return 0, 0, fmt.Errorf("bad port %q", lo)
	}
	if !isRange {
		return a, a, nil
	}
	b, err := strconv.Atoi(hi)
	if err != nil || b < a || b > 65535 {
		return 0, 0, fmt.Errorf("bad port range %q", s)
	}
	return a, b, nil
}

func parseRestart(s string) (container.RestartPolicy, error) {
	name, max, _ := strings.Cut(s, ":")
	rp := container.RestartPolicy{Name: container.RestartPolicyMode(name)}
	switch rp.Name {
	case "", container.RestartPolicyDisabled, container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		if max != "" {
			return rp, fmt.Errorf("invalid restart policy %q: maximum retry count only applies to on-failure", s)
		}
	case container.RestartPolicyOnFailure:
		if max != "" {
			n, err := strconv.Atoi(max)
			if err != nil || n < 0 {
				return rp, fmt.Errorf("invalid restart policy %q: bad maximum retry count", s)
			}
			rp.MaximumRetryCount = n
		}
	default:
		return rp, fmt.Errorf("invalid restart policy %q", s)
	}
	return rp, nil
}

func runContainer(c *cli.Context) error {
	cwd, _ := os.Getwd()
	req, err := createRequest(c, cwd, os.LookupEnv)
	if err != nil {
		return &exitError{code: 125, err: err}
	}
	if req.Config.Tty && req.Config.AttachStdin && !term.IsTerminal(int(os.Stdin.Fd())) {
		return &exitError{code: 125, err: errors.New("the input device is not a TTY")}
	}
	return withClient(c, func(ctx context.Context, cl *client.Client) error {
		created, err := cl.ContainerCreate(ctx, req)
		if err != nil && isNoSuchImage(err) {
			fmt.Fprintf(c.App.ErrWriter, "Unable to find image '%s' locally\n", req.Config.Image)
			if err = pullImage(ctx, cl, req.Config.Image, c.App.ErrWriter, false); err != nil {
				return &exitError{code: 125, err: err}
			}
			created, err = cl.ContainerCreate(ctx, req)
		}
		if err != nil {
			return &exitError{code: 125, err: err}
		}
		for _, w := range created.Warnings {
			fmt.Fprintln(c.App.ErrWriter, "WARNING:", w)
		}
		id := created.ID
		if c.Bool("detach") {
			if _, err := cl.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
				return &exitError{code: 125, err: err}
			}
			fmt.Fprintln(c.App.Writer, id)
			return nil
		}
		return runAttached(ctx, c, cl, id, req.Config)
	})
}

func isNoSuchImage(err error) bool {
	return cerrdefs.IsNotFound(err) && strings.Contains(err.Error(), "image")
}

// runAttached attaches before starting (so no output is lost), waits for
// the exit and returns the container's exit code as the command's.
func runAttached(ctx context.Context, c *cli.Context, cl *client.Client, id string, cfg *container.Config) error {
	att, err := cl.ContainerAttach(ctx, id, client.ContainerAttachOptions{
		Stream: true, Stdin: cfg.AttachStdin, Stdout: true, Stderr: true,
	})
	if err != nil {
		return &exitError{code: 125, err: err}
	}
	defer att.Close()
	cond := container.WaitConditionNextExit
	if c.Bool("rm") {
		cond = container.WaitConditionRemoved
	}
	wait := cl.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: cond})

	restore := func() {}
	if cfg.Tty && cfg.AttachStdin {
		if restore, err = makeRaw(os.Stdin); err != nil {
			return &exitError{code: 125, err: err}
		}
	}
	defer restore()

	if _, err := cl.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return &exitError{code: 125, err: err}
	}
	if cfg.Tty {
		stop := watchResize(ctx, func(h, w uint) {
			_, _ = cl.ContainerResize(ctx, id, client.ContainerResizeOptions{Height: h, Width: w})
		})
		defer stop()
	}
	outDone := pumpStreams(att.HijackedResponse, cfg.Tty, cfg.AttachStdin, os.Stdin, c.App.Writer, c.App.ErrWriter)

	var code int
	select {
	case res := <-wait.Result:
		if res.Error != nil && res.Error.Message != "" {
			return &exitError{code: 125, err: errors.New(res.Error.Message)}
		}
		code = int(res.StatusCode)
	case err := <-wait.Error:
		return &exitError{code: 125, err: err}
	}
	<-outDone // the engine closes the stream after the last output
	restore()
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// pumpStreams copies stdin into the hijacked connection (closing the write
// side at EOF) and its output to stdout/stderr; the returned channel closes
// when the output ends.
func pumpStreams(h client.HijackedResponse, tty, attachStdin bool, stdin io.Reader, stdout, stderr io.Writer) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if tty {
			_, _ = io.Copy(stdout, h.Reader)
		} else {
			_, _ = stdcopy.StdCopy(stdout, stderr, h.Reader)
		}
	}()
	if attachStdin {
		go func() {
			_, _ = io.Copy(h.Conn, stdin)
			if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
		}()
	}
	return done
}

func execContainer(c *cli.Context) error {
	if err := needArgs(c, 2, "CONTAINER COMMAND [ARG...]"); err != nil {
		return err
	}
	args := c.Args().Slice()
	tty, interactive := c.Bool("tty"), c.Bool("interactive")
	if tty && interactive && !term.IsTerminal(int(os.Stdin.Fd())) {
		return errors.New("the input device is not a TTY")
	}
	opts := client.ExecCreateOptions{
		User: c.String("user"), TTY: tty, AttachStdin: interactive && !c.Bool("detach"),
		AttachStdout: !c.Bool("detach"), AttachStderr: !c.Bool("detach"),
		Env: expandEnv(c.StringSlice("env"), os.LookupEnv), WorkingDir: c.String("workdir"), Cmd: args[1:],
	}
	return withClient(c, func(ctx context.Context, cl *client.Client) error {
		created, err := cl.ExecCreate(ctx, args[0], opts)
		if err != nil {
			return err
		}
		if c.Bool("detach") {
			_, err := cl.ExecStart(ctx, created.ID, client.ExecStartOptions{Detach: true, TTY: tty})
			return err
		}
		restore := func() {}
		if tty && interactive {
			if restore, err = makeRaw(os.Stdin); err != nil {
				return err
			}
		}
		defer restore()
		att, err := cl.ExecAttach(ctx, created.ID, client.ExecAttachOptions{TTY: tty})
		if err != nil {
			return err
		}
		defer att.Close()
		if tty {
			stop := watchResize(ctx, func(h, w uint) {
				_, _ = cl.ExecResize(ctx, created.ID, client.ExecResizeOptions{Height: h, Width: w})
			})
			defer stop()
		}
		<-pumpStreams(att.HijackedResponse, tty, interactive, os.Stdin, c.App.Writer, c.App.ErrWriter)
		restore()
		ins, err := cl.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
		if err != nil {
			return err
		}
		if ins.ExitCode != 0 {
			return &exitError{code: ins.ExitCode}
		}
		return nil
	})
}

// makeRaw puts the terminal f in raw mode and returns its restorer.
func makeRaw(f *os.File) (func(), error) {
	fd := int(f.Fd())
	if !term.IsTerminal(fd) {
		return func() {}, nil
	}
	st, err := term.MakeRaw(fd)
	if err != nil {
		return nil, fmt.Errorf("set terminal to raw mode: %w", err)
	}
	var once bool
	return func() {
		if !once {
			once = true
			_ = term.Restore(fd, st)
		}
	}, nil
}
