package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"
	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"github.com/berth-dev/berth/hostshim/daemon"
	"github.com/berth-dev/berth/hostshim/instance"
	"github.com/berth-dev/berth/hostshim/transport"
	"github.com/berth-dev/berth/platform"
)

// driverOptions are the CLI's knobs for drivers.
type driverOptions struct {
	agentPath string
	noUplink  bool
	debug     bool
	progress  func(msg string) // one line per step of a VM start
}

// instanceCommands manage berth instances: start, stop, status, delete, ssh, and the hidden hostagent.
func instanceCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name:      "start",
			Usage:     "create (if needed) and start an instance: its agent, then its hostagent and docker.sock",
			ArgsUsage: "[INSTANCE]",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "driver", Value: defaultDriver, Usage: "platform driver of a new instance"},
				&cli.StringFlag{Name: "agent", EnvVars: []string{"BERTH_AGENT"}, Usage: "berth-agent binary (native driver); default: next to berth, or bin/berth-agent"},
				&cli.BoolFlag{Name: "no-uplink", Usage: "native driver: no outbound network for the agent, even if slirp4netns is installed"},
				&cli.BoolFlag{Name: "debug-agent", Usage: "run the agent with --debug"},
				&cli.DurationFlag{Name: "timeout", Value: 2 * time.Minute, Usage: "how long to wait for the instance"},
			},
			Action: startInstance,
		},
		{
			Name:   "stop",
			Usage:  "stop an instance: its containers, hostagent and agent (images and containers persist)",
			Action: stopInstance,
		},
		{
			Name:      "status",
			Usage:     "show the state of an instance's agent, hostagent and socket",
			ArgsUsage: "[INSTANCE]",
			Action:    instanceStatus,
		},
		{
			Name:      "delete",
			Usage:     "stop an instance and remove it with its images and containers",
			ArgsUsage: "[INSTANCE]",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask for confirmation"},
			},
			Action: deleteInstance,
		},
		{
			Name:      "ssh",
			Usage:     "open a shell (or run a command) in an instance's agent over the SSH transport",
			ArgsUsage: "[--] [COMMAND [ARG...]]",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "allocate a pseudo-terminal even for a command"},
			},
			Action: sshInstance,
		},
		hostagentCommand(),
	}
}

// withInstanceCommands adds the instance commands to cmds. A name both families use (`stop`: Docker's
// `stop CONTAINER...` and the instance's `stop`) becomes one command: with arguments it is the container
// command, without (Docker's would fail: it needs one) the instance command.
func withInstanceCommands(cmds []*cli.Command) []*cli.Command {
	byName := map[string]*cli.Command{}
	for _, c := range cmds {
		byName[c.Name] = c
	}
	for _, ic := range instanceCommands() {
		cc, ok := byName[ic.Name]
		if !ok {
			cmds = append(cmds, ic)
			continue
		}
		containerAction, instanceAction := cc.Action, ic.Action
		cc.Usage += "; without arguments: " + ic.Usage
		cc.ArgsUsage = "[" + cc.ArgsUsage + "]"
		cc.Action = func(c *cli.Context) error {
			if c.NArg() == 0 {
				return instanceAction(c)
			}
			return containerAction(c)
		}
	}
	return cmds
}

// instanceName is the positional INSTANCE if given, else --instance.
func instanceName(c *cli.Context) string {
	if c.NArg() > 0 {
		return c.Args().First()
	}
	return c.String("instance")
}

// loadInstance opens an existing instance and its driver.
func loadInstance(name string, o driverOptions) (*instance.Instance, platform.Driver, error) {
	store, err := instance.DefaultStore()
	if err != nil {
		return nil, nil, err
	}
	inst, err := store.Load(name)
	if err != nil {
		return nil, nil, err
	}
	drv, err := newDriver(inst, o)
	if err != nil {
		return nil, nil, err
	}
	return inst, drv, nil
}

func startInstance(c *cli.Context) error {
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	w := c.App.ErrWriter
	name := instanceName(c)
	store, err := instance.DefaultStore()
	if err != nil {
		return err
	}
	inst, created, err := store.Ensure(name, instance.Config{Driver: c.String("driver")})
	if err != nil {
		return err
	}
	if !created && c.IsSet("driver") && c.String("driver") != inst.Config.Driver {
		return fmt.Errorf("instance %s uses driver %q; delete it to change drivers", name, inst.Config.Driver)
	}
	if created {
		fmt.Fprintf(w, "created instance %s (driver %s) in %s\n", name, inst.Config.Driver, inst.Dir)
	}
	drv, err := newDriver(inst, driverOptions{
		agentPath: c.String("agent"), noUplink: c.Bool("no-uplink"), debug: c.Bool("debug-agent"),
		progress: func(msg string) { fmt.Fprintln(c.App.ErrWriter, msg) },
	})
	if err != nil {
		return err
	}
	if pf, ok := drv.(platform.Preflighter); ok {
		if err := pf.Preflight(); err != nil {
			return err
		}
	}
	if err := drv.Create(ctx); err != nil {
		return err
	}
	st, err := drv.Status(ctx)
	if err != nil {
		return err
	}
	if st.State != platform.StateRunning {
		fmt.Fprintln(w, "starting agent")
		if err := drv.Start(ctx); err != nil {
			return err
		}
	}
	// A ping through the hostagent proves what the client's own handshake would (the same client key
	// accepted, the same pinned host key), so the handshake, which costs the just-booted guest a key
	// exchange, runs only to explain a ping that is slow to come (a refused key, a wrong host key).
	fmt.Fprintln(w, "waiting for agent")
	ha, err := daemon.ReadPIDFile(inst.HostagentPIDPath())
	spawned := false
	if err != nil {
		fmt.Fprintln(w, "starting hostagent")
		if ha, err = spawnHostagent(store, inst); err != nil {
			return err
		}
		spawned = true
	}
	pctx, pcancel := context.WithTimeout(ctx, diagnoseAfter)
	err = waitPing(pctx, inst.DockerSocketPath(), ha.Alive)
	pcancel()
	if err != nil && ctx.Err() == nil && ha.Alive() {
		if herr := handshake(ctx, inst, drv); herr != nil {
			if spawned {
				_ = daemon.Terminate(context.Background(), ha, 10*time.Second)
			}
			return herr
		}
		err = waitPing(ctx, inst.DockerSocketPath(), ha.Alive)
	}
	if err != nil {
		return fmt.Errorf("instance %s: docker.sock does not answer: %w; hostagent log:\n%s", name, err, tailFile(inst.HostagentLogPath(), 15))
	}
	fmt.Fprintf(c.App.Writer, "instance %s is running; DOCKER_HOST=unix://%s\n", name, inst.DockerSocketPath())
	return nil
}

// transportConfig is the SSH client configuration of an instance.
func transportConfig(inst *instance.Instance, drv platform.Driver) (transport.Config, error) {
	signer, err := inst.ClientSigner()
	if err != nil {
		return transport.Config{}, err
	}
	hostKey, err := inst.PinnedHostKey()
	if err != nil {
		return transport.Config{}, err
	}
	return transport.Config{Dial: drv.Dial, Signer: signer, HostKey: hostKey}, nil
}

// handshake checks that the agent answers SSH with the pinned key.
func handshake(ctx context.Context, inst *instance.Instance, drv platform.Driver) error {
	cfg, err := transportConfig(inst, drv)
	if err != nil {
		return err
	}
	cfg.KeepAlive = -1
	tc, err := transport.New(cfg)
	if err != nil {
		return err
	}
	defer tc.Close()
	if err := tc.Connect(ctx); err != nil {
		return fmt.Errorf("instance %s: agent: %w", inst.Name, err)
	}
	return nil
}

// diagnoseAfter is how long `berth start` waits for docker.sock to answer before it checks the agent's
// SSH endpoint itself, to tell why.
const diagnoseAfter = 3 * time.Second

// spawnHostagent starts `berth --instance NAME hostagent` detached, logging to hostagent.log.
func spawnHostagent(store *instance.Store, inst *instance.Instance) (daemon.Process, error) {
	exe, err := os.Executable()
	if err != nil {
		return daemon.Process{}, fmt.Errorf("start hostagent: %w", err)
	}
	cmd, err := hostagentCmd(exe, store.Root, inst, os.Environ())
	if err != nil {
		return daemon.Process{}, err
	}
	logf, err := os.OpenFile(inst.HostagentLogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return daemon.Process{}, fmt.Errorf("start hostagent: %w", err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	daemon.Detach(cmd)
	if err := cmd.Start(); err != nil {
		return daemon.Process{}, fmt.Errorf("start hostagent: %w", err)
	}
	// Reap it should it exit while this process still runs; otherwise init does.
	go func() { _ = cmd.Wait() }()
	p, err := daemon.Identify(cmd.Process.Pid)
	if err != nil {
		return daemon.Process{}, fmt.Errorf("start hostagent: it exited at once: %w", err)
	}
	return p, nil
}

// waitPing waits until the socket answers /_ping, giving up early once alive (the serving process)
// reports false.
func waitPing(ctx context.Context, sock string, alive func() bool) error {
	cl, err := client.New(client.WithHost("unix://"+sock), client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer cl.Close()
	// The hostagent answers tens of milliseconds after its start: poll often, then less.
	step := 5 * time.Millisecond
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := cl.Ping(pctx, client.PingOptions{})
		cancel()
		if err == nil {
			return nil
		}
		if !alive() {
			return fmt.Errorf("the hostagent exited (last error: %w)", err)
		}
		t := time.NewTimer(step)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		}
		step = min(step*3/2, 100*time.Millisecond)
	}
}

func stopInstance(c *cli.Context) error {
	ctx, cancel := context.WithTimeout(c.Context, 2*time.Minute)
	defer cancel()
	inst, drv, err := loadInstance(c.String("instance"), driverOptions{})
	if err != nil {
		return err
	}
	return stopAll(ctx, c.App.ErrWriter, inst, drv)
}

// stopAll stops the running containers through the engine (so that their state is recorded), then the
// hostagent, then the agent.
func stopAll(ctx context.Context, w io.Writer, inst *instance.Instance, drv platform.Driver) error {
	st, err := drv.Status(ctx)
	if err != nil {
		return err
	}
	if st.State == platform.StateRunning {
		if err := stopContainers(ctx, w, inst, drv); err != nil {
			fmt.Fprintf(w, "warning: stopping containers: %v\n", err)
		}
	}
	if ha, err := daemon.ReadPIDFile(inst.HostagentPIDPath()); err == nil {
		fmt.Fprintln(w, "stopping hostagent")
		if err := daemon.Terminate(ctx, ha, 10*time.Second); err != nil {
			return fmt.Errorf("stop hostagent: %w", err)
		}
	}
	if st.State == platform.StateRunning || st.State == platform.StateDegraded {
		fmt.Fprintln(w, "stopping agent")
	}
	return drv.Stop(ctx)
}

// engineOverTransport is a Docker API client that reaches the engine directly over the SSH transport (not
// through the hostagent, which may be down).
func engineOverTransport(inst *instance.Instance, drv platform.Driver) (*client.Client, func(), error) {
	cfg, err := transportConfig(inst, drv)
	if err != nil {
		return nil, nil, err
	}
	cfg.KeepAlive = -1
	tc, err := transport.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	cl, err := client.New(client.WithHost("unix://"+drv.EngineSocket()), client.WithAPIVersionNegotiation(),
		client.WithDialContext(func(ctx context.Context, _, _ string) (net.Conn, error) {
			return tc.DialStreamLocal(ctx, drv.EngineSocket())
		}))
	if err != nil {
		tc.Close()
		return nil, nil, err
	}
	return cl, func() { cl.Close(); tc.Close() }, nil
}

// stopContainers stops every running container (10 s grace each, in parallel).
func stopContainers(ctx context.Context, w io.Writer, inst *instance.Instance, drv platform.Driver) error {
	cl, done, err := engineOverTransport(inst, drv)
	if err != nil {
		return err
	}
	defer done()
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	res, err := cl.ContainerList(lctx, client.ContainerListOptions{})
	cancel()
	if err != nil {
		return err
	}
	if len(res.Items) == 0 {
		return nil
	}
	fmt.Fprintf(w, "stopping %d container(s)\n", len(res.Items))
	var wg sync.WaitGroup
	errs := make([]error, len(res.Items))
	for i, ctr := range res.Items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			timeout := 10
			_, errs[i] = cl.ContainerStop(ctx, ctr.ID, client.ContainerStopOptions{Timeout: &timeout})
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func instanceStatus(c *cli.Context) error {
	ctx := c.Context
	inst, drv, err := loadInstance(instanceName(c), driverOptions{})
	if err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "instance:  %s (driver %s, %s)\n", inst.Name, inst.Config.Driver, inst.Dir)
	st, err := drv.Status(ctx)
	if err != nil {
		return err
	}
	agent := string(st.State)
	if st.PID != 0 {
		agent += fmt.Sprintf(" (pid %d)", st.PID)
	}
	fmt.Fprintf(w, "agent:     %s, endpoint %s\n", agent, st.Endpoint)
	for _, n := range st.Notes {
		fmt.Fprintf(w, "           %s\n", n)
	}
	if p, err := daemon.ReadPIDFile(inst.HostagentPIDPath()); err == nil {
		fmt.Fprintf(w, "hostagent: running (pid %d), log %s\n", p.PID, inst.HostagentLogPath())
	} else {
		fmt.Fprintf(w, "hostagent: stopped\n")
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	sock := inst.DockerSocketPath()
	if err := pingOnce(pctx, sock); err != nil {
		fmt.Fprintf(w, "socket:    unix://%s (not answering: %v)\n", sock, err)
	} else {
		fmt.Fprintf(w, "socket:    unix://%s (ok)\n", sock)
	}
	return nil
}

func pingOnce(ctx context.Context, sock string) error {
	if _, err := os.Stat(sock); err != nil {
		return err
	}
	cl, err := client.New(client.WithHost("unix://"+sock), client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer cl.Close()
	_, err = cl.Ping(ctx, client.PingOptions{})
	return err
}

func deleteInstance(c *cli.Context) error {
	name := instanceName(c)
	store, err := instance.DefaultStore()
	if err != nil {
		return err
	}
	inst, err := store.Load(name)
	if err != nil {
		return err
	}
	// An instance whose driver this berth lacks can still be deleted (nothing of it can run here).
	drv, drvErr := newDriver(inst, driverOptions{})
	if !c.Bool("force") {
		if !term.IsTerminal(int(os.Stdin.Fd())) {
			return fmt.Errorf("delete %s removes its images and containers: confirm with -f", name)
		}
		fmt.Fprintf(c.App.ErrWriter, "delete instance %s with all its images and containers? [y/N] ", name)
		line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			return errors.New("not deleted")
		}
	}
	ctx, cancel := context.WithTimeout(c.Context, 2*time.Minute)
	defer cancel()
	if drvErr == nil {
		if err := stopAll(ctx, c.App.ErrWriter, inst, drv); err != nil {
			return err
		}
		if err := drv.Delete(ctx); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.App.ErrWriter, "warning: %v; removing its files only\n", drvErr)
		if ha, err := daemon.ReadPIDFile(inst.HostagentPIDPath()); err == nil {
			if err := daemon.Terminate(ctx, ha, 10*time.Second); err != nil {
				return fmt.Errorf("stop hostagent: %w", err)
			}
		}
	}
	if err := store.Remove(name); err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, "deleted instance %s\n", name)
	return nil
}

func sshInstance(c *cli.Context) error {
	ctx := c.Context
	inst, drv, err := loadInstance(c.String("instance"), driverOptions{})
	if err != nil {
		return err
	}
	cfg, err := transportConfig(inst, drv)
	if err != nil {
		return err
	}
	tc, err := transport.New(cfg)
	if err != nil {
		return err
	}
	defer tc.Close()
	sess, err := tc.Session(ctx)
	if err != nil {
		return fmt.Errorf("instance %s: %w", inst.Name, err)
	}
	defer sess.Close()
	command := strings.Join(c.Args().Slice(), " ")
	stdinTTY := term.IsTerminal(int(os.Stdin.Fd()))
	if stdinTTY && (command == "" || c.Bool("tty")) {
		w, h, err := term.GetSize(int(os.Stdout.Fd()))
		if err != nil {
			w, h = 80, 24
		}
		termName := os.Getenv("TERM")
		if termName == "" {
			termName = "xterm"
		}
		if err := sess.RequestPty(termName, h, w, ssh.TerminalModes{ssh.ECHO: 1}); err != nil {
			return fmt.Errorf("request pty: %w", err)
		}
		restore, err := makeRaw(os.Stdin)
		if err != nil {
			return err
		}
		defer restore()
		stop := watchResize(ctx, func(h, w uint) { _ = sess.WindowChange(int(h), int(w)) })
		defer stop()
	}
	sess.Stdin, sess.Stdout, sess.Stderr = os.Stdin, c.App.Writer, c.App.ErrWriter
	if command == "" {
		err = sess.Shell()
		if err == nil {
			err = sess.Wait()
		}
	} else {
		err = sess.Run(command)
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return &exitError{code: ee.ExitStatus()}
	}
	return err
}

// tailFile returns the last n lines of a file (for error messages).
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
