package main

// `berth-agent oci`: a runc-compatible command line over guestagent/runtime/libct, so that the OCI
// runtime-tools validation suite and side-by-side benchmarks with runc and crun run on the same bundle.
// runc's global flags (--root, --log, …) belong to the oci command: `berth-agent oci --root R create …`.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/berth-dev/berth/guestagent/runtime/libct"
)

func init() {
	commands = append(commands, ociCommand())
}

// Errors of the oci command line itself (libct's errors pass through).
var (
	errUsage          = errors.New("usage")
	errSystemdCgroup  = errors.New("systemd cgroup driver is not supported: berth manages cgroups itself")
	errNeedConsoleSkt = errors.New("cannot allocate tty if the runtime will detach without setting console socket")
	errConsoleSktNoTT = errors.New("cannot use console socket if the runtime will not detach or allocate tty")
)

// ociDefaultRoot is runc's --root for berth.
const ociDefaultRoot = "/run/berth/oci"

func ociCommand() *cli.Command {
	bundle := &cli.StringFlag{Name: "bundle", Aliases: []string{"b"}, Value: ".", Usage: "path to the bundle directory"}
	consoleSocket := &cli.StringFlag{Name: "console-socket", Usage: "unix socket that receives the pty master of a container with a terminal"}
	pidFile := &cli.StringFlag{Name: "pid-file", Usage: "file to write the process id to"}
	noPivot := &cli.BoolFlag{Name: "no-pivot", Usage: "do not use pivot_root (rootfs on ramfs)"}
	noNewKeyring := &cli.BoolFlag{Name: "no-new-keyring", Usage: "accepted for runc compatibility; berth creates no session keyring"}
	detach := &cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "detach from the container's process"}
	return &cli.Command{
		Name:  "oci",
		Usage: "runc-compatible OCI runtime (create, start, state, kill, delete, run, exec, list, features)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "root", Value: ociDefaultRoot, Usage: "directory for the containers' state"},
			&cli.StringFlag{Name: "log", Usage: "log file (default stderr)"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log format: text or json"},
			&cli.BoolFlag{Name: "debug", Usage: "log at debug level"},
			&cli.BoolFlag{Name: "systemd-cgroup", Usage: "use systemd's cgroup driver (not supported)"},
		},
		Before: func(c *cli.Context) error {
			if c.Bool("systemd-cgroup") {
				return cli.Exit(errSystemdCgroup.Error(), 1)
			}
			if f := c.String("log-format"); f != "text" && f != "json" {
				return cli.Exit(fmt.Sprintf("invalid log-format %q (want text or json)", f), 1)
			}
			return nil
		},
		Subcommands: []*cli.Command{
			{
				Name: "create", Usage: "create a container (its process waits for start)", ArgsUsage: "<container-id>",
				Flags:  []cli.Flag{bundle, consoleSocket, pidFile, noPivot, noNewKeyring},
				Action: ociAction(1, ociCreate),
			},
			{
				Name: "start", Usage: "start the user process of a created container", ArgsUsage: "<container-id>",
				Action: ociAction(1, func(c *cli.Context, r *libct.Runtime) error {
					return r.Start(c.Context, c.Args().First())
				}),
			},
			{
				Name: "run", Usage: "create and start a container", ArgsUsage: "<container-id>",
				Flags:  []cli.Flag{bundle, consoleSocket, pidFile, noPivot, noNewKeyring, detach},
				Action: ociAction(1, ociRun),
			},
			{
				Name: "state", Usage: "print the state of a container (runtime-spec JSON)", ArgsUsage: "<container-id>",
				Action: ociAction(1, ociState),
			},
			{
				Name: "kill", Usage: "send a signal (default SIGTERM) to a container's init", ArgsUsage: "<container-id> [signal]",
				Flags:  []cli.Flag{&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "signal every process of the container"}},
				Action: ociAction(-1, ociKill),
			},
			{
				Name: "delete", Usage: "delete a stopped container", ArgsUsage: "<container-id>",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "kill a running container first"}},
				Action: ociAction(1, func(c *cli.Context, r *libct.Runtime) error {
					err := r.Delete(c.Context, c.Args().First(), c.Bool("force"))
					if c.Bool("force") && errors.Is(err, libct.ErrNotExist) {
						return nil // runc: --force on a missing container is not an error
					}
					return err
				}),
			},
			{
				Name: "exec", Usage: "run a process in a running container", ArgsUsage: "<container-id> <command> [args…]",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "process", Aliases: []string{"p"}, Usage: "process.json (runtime-spec Process); other process flags are ignored"},
					&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "allocate a pseudo-TTY"},
					detach, pidFile, consoleSocket,
					&cli.StringFlag{Name: "cwd", Usage: "working directory in the container"},
					&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set an environment variable (KEY=VALUE)"},
					&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "UID (format: <uid>[:<gid>])"},
					&cli.IntSliceFlag{Name: "additional-gids", Aliases: []string{"g"}, Usage: "additional gids"},
					&cli.StringSliceFlag{Name: "cap", Aliases: []string{"c"}, Usage: "add a capability"},
					&cli.BoolFlag{Name: "no-new-privs", Usage: "set no_new_privileges"},
				},
				Action: ociAction(-2, ociExec),
			},
			{
				Name: "list", Usage: "list the containers", ArgsUsage: " ",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "table", Usage: "table or json"},
					&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the ids"},
				},
				Action: ociAction(0, ociList),
			},
			{
				Name: "features", Usage: "print the runtime's features (runtime-spec features.md JSON)", ArgsUsage: " ",
				Action: ociAction(0, func(c *cli.Context, _ *libct.Runtime) error {
					return writeJSON(c.App.Writer, ociFeatures())
				}),
			},
		},
	}
}

// ociAction checks the argument count (n exact; -n at least n) and runs fn with a runtime built from the
// oci command's flags. An error is logged (so that a --log file carries it, as containerd reads runc's)
// and printed on stderr; the process exits 1, like runc.
func ociAction(n int, fn func(*cli.Context, *libct.Runtime) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		logger, closeLog, err := ociLogger(c)
		if err != nil {
			return cli.Exit(err.Error(), 1)
		}
		defer closeLog()
		if err := checkArgs(c.Command.Name, c.NArg(), n); err != nil {
			_ = cli.ShowSubcommandHelp(c)
			return cli.Exit(err.Error(), 1)
		}
		r := &libct.Runtime{Root: c.String("root"), Logger: logger}
		err = fn(c, r)
		var ec cli.ExitCoder
		if err == nil || errors.As(err, &ec) {
			return err
		}
		if c.String("log") != "" {
			logger.Error(err.Error())
		}
		return cli.Exit(err.Error(), 1)
	}
}

// checkArgs: n >= 0 means exactly n arguments, n < 0 at least -n.
func checkArgs(cmd string, got, n int) error {
	switch {
	case n >= 0 && got != n:
		return fmt.Errorf("%w: %q requires exactly %d argument(s), got %d", errUsage, cmd, n, got)
	case n < 0 && got < -n:
		return fmt.Errorf("%w: %q requires at least %d argument(s), got %d", errUsage, cmd, -n, got)
	}
	return nil
}

// ociLogger builds the logger of --log, --log-format and --debug; the level names are lower case, as
// runc's (logrus) are, so that tools reading runc's JSON log find `"level":"error"`.
func ociLogger(c *cli.Context) (*slog.Logger, func(), error) {
	var w io.Writer = os.Stderr
	closeFn := func() {}
	if path := c.String("log"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("open log file: %w", err)
		}
		w, closeFn = f, func() { f.Close() }
	}
	level := slog.LevelInfo
	if c.Bool("debug") {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.LevelKey {
			a.Value = slog.StringValue(strings.ToLower(a.Value.String()))
		}
		return a
	}}
	if c.String("log-format") == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), closeFn, nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), closeFn, nil
}

func ociCreate(c *cli.Context, r *libct.Runtime) error {
	bundle, opts, err := createOpts(c, true)
	if err != nil {
		return err
	}
	_, err = r.Create(c.Context, c.Args().First(), bundle, opts)
	return err
}

// createOpts returns the absolute bundle directory and the options of create and run. It reads the
// bundle's config.json for process.terminal, to check the terminal flags as runc does.
func createOpts(c *cli.Context, detach bool) (string, libct.CreateOpts, error) {
	bundle, err := filepath.Abs(c.String("bundle"))
	if err != nil {
		return "", libct.CreateOpts{}, fmt.Errorf("bundle %s: %w", c.String("bundle"), err)
	}
	spec, err := loadSpec(filepath.Join(bundle, "config.json"))
	if err != nil {
		return "", libct.CreateOpts{}, err
	}
	terminal := spec.Process != nil && spec.Process.Terminal
	if err := checkTerminal(terminal, detach, c.String("console-socket")); err != nil {
		return "", libct.CreateOpts{}, err
	}
	opts := libct.CreateOpts{
		Stdio:         libct.Stdio{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr},
		ConsoleSocket: c.String("console-socket"),
		NoPivot:       c.Bool("no-pivot"),
	}
	if opts.ConsoleSocket != "" {
		if opts.ConsoleSocket, err = filepath.Abs(opts.ConsoleSocket); err != nil {
			return "", libct.CreateOpts{}, err
		}
	}
	if p := c.String("pid-file"); p != "" {
		if opts.PidFile, err = filepath.Abs(p); err != nil {
			return "", libct.CreateOpts{}, err
		}
	}
	return bundle, opts, nil
}

// checkTerminal applies runc's rules: a detached process with a terminal needs a console socket, and a
// console socket needs a detached process with a terminal.
func checkTerminal(terminal, detach bool, consoleSocket string) error {
	switch {
	case terminal && detach && consoleSocket == "":
		return errNeedConsoleSkt
	case consoleSocket != "" && (!terminal || !detach):
		return errConsoleSktNoTT
	}
	return nil
}

func loadSpec(path string) (*specs.Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("parse spec %s: %w", path, err)
	}
	return &spec, nil
}

func ociRun(c *cli.Context, r *libct.Runtime) error {
	detach := c.Bool("detach")
	bundle, opts, err := createOpts(c, detach)
	if err != nil {
		return err
	}
	id := c.Args().First()
	// Catch signals before the container exists, so that none is lost between create and wait.
	var sigc chan os.Signal
	if !detach {
		sigc = make(chan os.Signal, 128)
		signal.Notify(sigc)
		defer signal.Stop(sigc)
	}
	p, err := r.Create(c.Context, id, bundle, opts)
	if err != nil {
		return err
	}
	if err := r.Start(c.Context, id); err != nil {
		if p.Console != nil {
			p.Console.Close()
		}
		// A container whose start failed is not left behind, as with runc run.
		_ = r.Delete(context.WithoutCancel(c.Context), id, true)
		return err
	}
	if detach {
		return nil
	}
	status, err := waitForeground(p, sigc, r.Logger)
	if derr := r.Delete(context.WithoutCancel(c.Context), id, true); derr != nil && err == nil {
		err = derr
	}
	if err != nil {
		return err
	}
	return exitStatus(status)
}

// waitForeground relays the terminal (if any) and forwards signals to p until it exits.
func waitForeground(p *libct.Process, sigc chan os.Signal, log *slog.Logger) (syscall.WaitStatus, error) {
	var relayDone <-chan struct{}
	if p.Console != nil {
		restore, done := relayConsole(p.Console, log)
		defer restore()
		relayDone = done
	}
	type result struct {
		ws  syscall.WaitStatus
		err error
	}
	waited := make(chan result, 1)
	go func() {
		ws, err := p.Wait()
		waited <- result{ws, err}
	}()
	for {
		select {
		case sig := <-sigc:
			s, ok := sig.(syscall.Signal)
			if !ok || !forwardable(s) {
				if s == unix.SIGWINCH && p.Console != nil {
					resizeConsole(p.Console)
				}
				continue
			}
			if err := unix.Kill(p.Pid, s); err != nil && !errors.Is(err, unix.ESRCH) {
				log.Warn("forward signal", "signal", s, "pid", p.Pid, "err", err)
			}
		case res := <-waited:
			if relayDone != nil {
				// The output copy ends when the last holder of the pty's slave side exits; a process the
				// container left behind may keep it open, so do not wait for ever.
				select {
				case <-relayDone:
				case <-time.After(time.Second):
				}
			}
			return res.ws, res.err
		}
	}
}

// forwardable reports whether run/exec pass sig on to the container process: every signal but those
// that concern the runtime itself (its child's exit, terminal resizes, Go's preemption signal).
func forwardable(sig syscall.Signal) bool {
	switch sig {
	case unix.SIGCHLD, unix.SIGWINCH, unix.SIGURG:
		return false
	}
	return true
}

// exitStatus maps a wait status to the runtime's exit: the code, or 128+signal (shell convention).
func exitStatus(ws syscall.WaitStatus) error {
	code := 0
	switch {
	case ws.Exited():
		code = ws.ExitStatus()
	case ws.Signaled():
		code = 128 + int(ws.Signal())
	}
	if code == 0 {
		return nil
	}
	return cli.Exit("", code)
}

// relayConsole copies the caller's stdin to the pty master and the master to stdout, with the caller's
// terminal (if stdin is one) in raw mode until restore. done closes when the output copy ends.
func relayConsole(console *os.File, log *slog.Logger) (restore func(), done <-chan struct{}) {
	restore = func() {}
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		if old, err := term.MakeRaw(fd); err != nil {
			log.Warn("set terminal raw", "err", err)
		} else {
			restore = func() { _ = term.Restore(fd, old) }
		}
		resizeConsole(console)
	}
	go func() { _, _ = io.Copy(console, os.Stdin) }()
	out := make(chan struct{})
	go func() {
		defer close(out)
		_, _ = io.Copy(os.Stdout, console) // ends with EIO once the slave side is closed
	}()
	return restore, out
}

// resizeConsole gives the container's pty the caller's window size.
func resizeConsole(console *os.File) {
	ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return
	}
	_ = unix.IoctlSetWinsize(int(console.Fd()), unix.TIOCSWINSZ, ws)
}

// ociStateJSON is runc's state output: the runtime-spec state plus the root filesystem and when and by
// whom the container was created.
type ociStateJSON struct {
	specs.State
	Rootfs  string    `json:"rootfs,omitempty"`
	Created time.Time `json:"created"`
	Owner   string    `json:"owner"`
}

// describe completes a runtime-spec state with the rootfs, creation time and owner of the container. libct
// keeps them in Root/<id>: the owner is the directory's, rootfs and time are fields of its state.json
// (libct's Runtime.State does not return them); the time falls back to the directory's modification time.
func describe(root string, st *specs.State) ociStateJSON {
	out := ociStateJSON{State: *st}
	dir := filepath.Join(root, st.ID)
	fi, err := os.Stat(dir)
	if err != nil {
		return out
	}
	out.Created = fi.ModTime().UTC()
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		out.Owner = ownerName(sys.Uid)
	}
	var saved struct {
		Rootfs  string    `json:"rootfs"`
		Created time.Time `json:"created"`
	}
	if data, err := os.ReadFile(filepath.Join(dir, "state.json")); err == nil && json.Unmarshal(data, &saved) == nil {
		out.Rootfs = saved.Rootfs
		if !saved.Created.IsZero() {
			out.Created = saved.Created.UTC()
		}
	}
	return out
}

func ownerName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return "#" + id
}

func ociState(c *cli.Context, r *libct.Runtime) error {
	st, err := r.State(c.Args().First())
	if err != nil {
		return err
	}
	return writeJSON(c.App.Writer, describe(r.Root, st))
}

func writeJSON(w io.Writer, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", data)
	return err
}

func ociKill(c *cli.Context, r *libct.Runtime) error {
	if c.NArg() > 2 {
		return fmt.Errorf("%w: \"kill\" takes at most 2 arguments, got %d", errUsage, c.NArg())
	}
	sig := unix.SIGTERM
	if c.NArg() == 2 {
		var err error
		if sig, err = parseSignal(c.Args().Get(1)); err != nil {
			return err
		}
	}
	err := r.Kill(c.Args().First(), sig, c.Bool("all"))
	if c.Bool("all") && errors.Is(err, libct.ErrNotRunning) {
		return nil // runc: --all on a stopped container has nothing left to signal
	}
	return err
}

// parseSignal accepts a signal number or name, with or without the SIG prefix, in any case.
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("%w: invalid signal number %d", errUsage, n)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("%w: unknown signal %q", errUsage, s)
}

func ociList(c *cli.Context, r *libct.Runtime) error {
	states, err := r.List()
	if err != nil {
		return err
	}
	list := make([]ociStateJSON, 0, len(states))
	for _, st := range states {
		list = append(list, describe(r.Root, st))
	}
	switch {
	case c.Bool("quiet"):
		for _, s := range list {
			fmt.Fprintln(c.App.Writer, s.ID)
		}
		return nil
	case c.String("format") == "json":
		data, err := json.Marshal(list)
		if err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		_, err = fmt.Fprintf(c.App.Writer, "%s\n", data)
		return err
	case c.String("format") == "table":
		return writeTable(c.App.Writer, list)
	}
	return fmt.Errorf("%w: invalid format %q (want table or json)", errUsage, c.String("format"))
}

// writeTable prints runc's list table.
func writeTable(w io.Writer, list []ociStateJSON) error {
	tw := tabwriter.NewWriter(w, 12, 1, 3, ' ', 0)
	fmt.Fprint(tw, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.Pid, s.Status, s.Bundle,
			s.Created.Format(time.RFC3339Nano), s.Owner)
	}
	return tw.Flush()
}

// execFlags are the process flags of `exec` without --process.
type execFlags struct {
	Args           []string
	Tty            bool
	Cwd            string
	Env            []string
	User           string // uid[:gid]
	AdditionalGids []int
	Caps           []string
	NoNewPrivs     bool
}

// execProcess builds the process of `exec` from the container's own process (runc's semantics: the
// config's process with the command, terminal, cwd, extra env, user and capabilities replaced or added).
func execProcess(base *specs.Process, f execFlags) (*specs.Process, error) {
	if len(f.Args) == 0 {
		return nil, fmt.Errorf("%w: exec needs a command", errUsage)
	}
	var p specs.Process
	if base != nil {
		p = *base
		p.Env = append([]string(nil), base.Env...)
		p.User.AdditionalGids = append([]uint32(nil), base.User.AdditionalGids...)
		if base.Capabilities != nil {
			caps := *base.Capabilities
			p.Capabilities = &caps
		}
	}
	p.Args = f.Args
	p.Terminal = f.Tty
	p.ConsoleSize = nil
	if f.Cwd != "" {
		p.Cwd = f.Cwd
	}
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	p.Env = append(p.Env, f.Env...)
	if f.User != "" {
		uid, gid, hasGid := strings.Cut(f.User, ":")
		n, err := strconv.ParseUint(uid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: user %q: uid must be a number", errUsage, f.User)
		}
		p.User.UID = uint32(n)
		if hasGid {
			n, err := strconv.ParseUint(gid, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("%w: user %q: gid must be a number", errUsage, f.User)
			}
			p.User.GID = uint32(n)
		}
	}
	for _, g := range f.AdditionalGids {
		if g < 0 {
			return nil, fmt.Errorf("%w: additional gid %d", errUsage, g)
		}
		p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(g))
	}
	if len(f.Caps) > 0 {
		if p.Capabilities == nil {
			p.Capabilities = &specs.LinuxCapabilities{}
		}
		for _, c := range f.Caps {
			c = strings.ToUpper(c)
			if !strings.HasPrefix(c, "CAP_") {
				c = "CAP_" + c
			}
			p.Capabilities.Bounding = append(p.Capabilities.Bounding, c)
			p.Capabilities.Effective = append(p.Capabilities.Effective, c)
			p.Capabilities.Permitted = append(p.Capabilities.Permitted, c)
		}
	}
	if f.NoNewPrivs {
		p.NoNewPrivileges = true
	}
	return &p, nil
}

func ociExec(c *cli.Context, r *libct.Runtime) error {
	id := c.Args().First()
	st, err := r.State(id)
	if err != nil {
		return err
	}
	var proc *specs.Process
	if path := c.String("process"); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read process: %w", err)
		}
		proc = new(specs.Process)
		if err := json.Unmarshal(data, proc); err != nil {
			return fmt.Errorf("parse process %s: %w", path, err)
		}
		if len(proc.Args) == 0 {
			return fmt.Errorf("%w: process %s has no args", errUsage, path)
		}
	} else {
		spec, err := loadSpec(filepath.Join(st.Bundle, "config.json"))
		if err != nil {
			return err
		}
		proc, err = execProcess(spec.Process, execFlags{
			Args: c.Args().Slice()[1:], Tty: c.Bool("tty"), Cwd: c.String("cwd"), Env: c.StringSlice("env"),
			User: c.String("user"), AdditionalGids: c.IntSlice("additional-gids"), Caps: c.StringSlice("cap"),
			NoNewPrivs: c.Bool("no-new-privs"),
		})
		if err != nil {
			return err
		}
	}
	detach := c.Bool("detach")
	if err := checkTerminal(proc.Terminal, detach, c.String("console-socket")); err != nil {
		return err
	}
	opts := libct.ExecOpts{
		Stdio:         libct.Stdio{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr},
		ConsoleSocket: c.String("console-socket"),
		PidFile:       c.String("pid-file"),
	}
	if opts.PidFile != "" {
		if opts.PidFile, err = filepath.Abs(opts.PidFile); err != nil {
			return err
		}
	}
	var sigc chan os.Signal
	if !detach {
		sigc = make(chan os.Signal, 128)
		signal.Notify(sigc)
		defer signal.Stop(sigc)
	}
	p, err := r.Exec(c.Context, id, proc, opts)
	if err != nil {
		return err
	}
	if detach {
		return nil
	}
	status, err := waitForeground(p, sigc, r.Logger)
	if err != nil {
		return err
	}
	return exitStatus(status)
}

// ociFeatures reports what is known for certain; runtime-spec features.md reads an absent field as
// "unknown", not "unsupported".
func ociFeatures() *features.Features {
	yes, no := true, false
	return &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
		Linux: &features.Linux{
			Namespaces: []string{"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"},
			Cgroup:     &features.Cgroup{V1: &yes, V2: &yes, Systemd: &no, SystemdUser: &no},
			Seccomp:    &features.Seccomp{Enabled: &yes},
			Apparmor:   &features.Apparmor{Enabled: &no},
			Selinux:    &features.Selinux{Enabled: &no},
		},
	}
}
