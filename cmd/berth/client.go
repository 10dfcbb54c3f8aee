package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/moby/moby/client"
	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/hostshim/instance"
)

// globalFlags choose the engine the container commands talk to.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "host", Aliases: []string{"H"}, EnvVars: []string{"BERTH_HOST"},
			Usage: "engine socket (unix:///path, tcp://host:port, npipe:////./pipe/name); default: the current instance's"},
		&cli.StringFlag{Name: "instance", EnvVars: []string{"BERTH_INSTANCE"}, Value: "default",
			Usage: "berth instance whose engine to use when --host is not given"},
	}
}

// engineHost resolves the engine address: --host, then BERTH_HOST (both via
// the flag), then the socket of the selected instance.
func engineHost(c *cli.Context) (string, error) {
	if h := c.String("host"); h != "" {
		return h, nil
	}
	home, err := instance.Home()
	if err != nil {
		return "", fmt.Errorf("locate the instance socket: %w", err)
	}
	return instanceHost(home, c.String("instance")), nil
}

// instanceHost is the docker.sock of instance in the berth home (~/.berth).
func instanceHost(berthHome, name string) string {
	return "unix://" + filepath.ToSlash(filepath.Join(berthHome, name, "docker.sock"))
}

// engineClient returns a client for the resolved engine, negotiating the API
// version on first use as the docker CLI does.
func engineClient(c *cli.Context) (*client.Client, error) {
	host, err := engineHost(c)
	if err != nil {
		return nil, err
	}
	cl, err := client.New(client.WithHost(host), client.WithAPIVersionNegotiation(),
		client.WithUserAgent("berth/"+version))
	if err != nil {
		return nil, fmt.Errorf("engine %s: %w", host, err)
	}
	return cl, nil
}

// withClient runs f with a client and closes it afterwards.
func withClient(c *cli.Context, f func(ctx context.Context, cl *client.Client) error) error {
	cl, err := engineClient(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	return f(c.Context, cl)
}

// exitError carries an exit status without a message (a container's exit
// code passed on by `run`), or with one.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }

// exitCodeOf returns the status main exits with for err.
func exitCodeOf(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if ec, ok := err.(cli.ExitCoder); ok {
		return ec.ExitCode()
	}
	return 1
}

// needArgs checks the positional argument count as docker does.
func needArgs(c *cli.Context, min int, usage string) error {
	if c.NArg() < min {
		return fmt.Errorf("%q requires at least %d argument(s)\nUsage: berth %s %s", c.Command.Name, min, c.Command.Name, usage)
	}
	return nil
}
