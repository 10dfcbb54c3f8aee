package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/hostshim/hostagent"
	"github.com/berth-dev/berth/hostshim/instance"
	"github.com/berth-dev/berth/platform"
)

// hostagentCommand is the hidden `berth hostagent`, started detached by `berth start`.
func hostagentCommand() *cli.Command {
	return &cli.Command{
		Name:   "hostagent",
		Usage:  "serve an instance's docker.sock and published ports (started by `berth start`)",
		Hidden: true,
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "keepalive", Usage: "SSH keepalive interval (default 5s)"},
			&cli.BoolFlag{Name: "debug", Usage: "log at debug level"},
		},
		Action: runHostagent,
	}
}

// NoHandoffEnv, when set to anything non-empty for `berth start`, makes the hostagent carry published ports
// over SSH even where the driver offers connection handoff (for comparisons and the SSH path's tests).
const NoHandoffEnv = "BERTH_NO_HANDOFF"

// hostagentCmd builds the command that runs an instance's hostagent with the same berth home.
func hostagentCmd(exe, home string, inst *instance.Instance, environ []string) (*exec.Cmd, error) {
	cmd := exec.Command(exe, "--instance", inst.Name, "hostagent")
	cmd.Env = append(environ, instance.HomeEnv+"="+home)
	cmd.Dir = inst.Dir
	return cmd, nil
}

func runHostagent(c *cli.Context) error {
	level := slog.LevelInfo
	if c.Bool("debug") {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level}))
	inst, drv, err := loadInstance(c.String("instance"), driverOptions{})
	if err != nil {
		return err
	}
	cfg, err := transportConfig(inst, drv)
	if err != nil {
		return err
	}
	var handoff string
	if h, ok := drv.(platform.Handoffer); ok && os.Getenv(NoHandoffEnv) == "" {
		handoff = h.HandoffSocket()
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = hostagent.Run(ctx, hostagent.Config{
		Dial:          drv.Dial,
		Signer:        cfg.Signer,
		HostKey:       cfg.HostKey,
		EngineSocket:  drv.EngineSocket(),
		HandoffSocket: handoff,
		APISocket:     inst.DockerSocketPath(),
		PIDFile:       inst.HostagentPIDPath(),
		KeepAlive:     c.Duration("keepalive"),
		Logger:        log.With("instance", inst.Name),
	})
	if err != nil {
		return fmt.Errorf("hostagent %s: %w", inst.Name, err)
	}
	return nil
}
