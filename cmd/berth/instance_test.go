package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/berth-dev/berth/hostshim/instance"
	"github.com/berth-dev/berth/platform"
)

// `stop` is both Docker's container verb and the instance's: arguments pick the container command.
func TestStopDispatch(t *testing.T) {
	var got []string
	cmds := []*cli.Command{{Name: "stop", ArgsUsage: "CONTAINER", Action: func(c *cli.Context) error {
		got = append(got, "container:"+strings.Join(c.Args().Slice(), ","))
		return nil
	}}}
	cmds = withInstanceCommands(cmds)
	var stop *cli.Command
	names := map[string]int{}
	for _, c := range cmds {
		names[c.Name]++
		if c.Name == "stop" {
			stop = c
		}
	}
	for _, n := range []string{"start", "stop", "status", "delete", "ssh", "hostagent"} {
		if names[n] != 1 {
			t.Errorf("command %q registered %d times", n, names[n])
		}
	}
	app := &cli.App{Name: "berth", Commands: cmds, Flags: globalFlags(), ExitErrHandler: func(*cli.Context, error) {}}
	if err := app.Run([]string{"berth", "stop", "a", "b"}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"container:a,b"}) {
		t.Fatalf("stop with arguments ran %q", got)
	}
	// Without arguments: the instance's stop, which fails here for want of an instance.
	t.Setenv(instance.HomeEnv, t.TempDir())
	err := app.Run([]string{"berth", "--instance", "nosuch", "stop"})
	if !errors.Is(err, instance.ErrNotExist) || len(got) != 1 {
		t.Fatalf("stop without arguments: %v (container runs %q)", err, got)
	}
	if !strings.Contains(stop.Usage, "without arguments") {
		t.Fatalf("merged usage: %q", stop.Usage)
	}
}

func TestHostagentCmd(t *testing.T) {
	inst := &instance.Instance{Name: "dev", Dir: "/h/dev"}
	cmd, err := hostagentCmd("/usr/bin/berth", "/h", inst, []string{"PATH=/bin", "BERTH_HOME=/old"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cmd.Args, []string{"/usr/bin/berth", "--instance", "dev", "hostagent"}) || cmd.Dir != "/h/dev" {
		t.Fatalf("argv %q dir %q", cmd.Args, cmd.Dir)
	}
	// The last BERTH_HOME wins in exec's environment handling.
	if cmd.Env[len(cmd.Env)-1] != "BERTH_HOME=/h" {
		t.Fatalf("env %q", cmd.Env)
	}
}

func TestStatusAndDeleteWithoutInstance(t *testing.T) {
	t.Setenv(instance.HomeEnv, t.TempDir())
	for _, args := range [][]string{{"status"}, {"delete", "-f"}, {"ssh", "true"}} {
		app := newApp()
		var out bytes.Buffer
		app.Writer, app.ErrWriter = &out, &out
		err := app.Run(append([]string{"berth", "--instance", "nosuch"}, args...))
		if !errors.Is(err, instance.ErrNotExist) {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// start refuses to switch an existing instance's driver, and reports a driver this OS lacks.
func TestStartDriverChecks(t *testing.T) {
	home := t.TempDir()
	t.Setenv(instance.HomeEnv, home)
	store := &instance.Store{Root: home}
	if _, err := store.Create("x", instance.Config{Driver: "nosuchdriver"}); err != nil {
		t.Fatal(err)
	}
	app := newApp()
	app.Writer, app.ErrWriter = &bytes.Buffer{}, &bytes.Buffer{}
	if err := app.Run([]string{"berth", "start", "--driver", "other", "x"}); err == nil || !strings.Contains(err.Error(), "delete it to change drivers") {
		t.Fatalf("driver switch: %v", err)
	}
	if err := app.Run([]string{"berth", "start", "x"}); !errors.Is(err, platform.ErrUnsupported) {
		t.Fatalf("unknown driver: %v", err)
	}
	if _, err := os.Stat(filepath.Join(home, "x", "hostagent.pid")); err == nil {
		t.Fatal("a hostagent was started for an unusable instance")
	}
	// Such an instance can still be deleted.
	if err := app.Run([]string{"berth", "delete", "-f", "x"}); err != nil {
		t.Fatalf("delete an instance with an unknown driver: %v", err)
	}
	if _, err := os.Stat(filepath.Join(home, "x")); err == nil {
		t.Fatal("instance directory left")
	}
}
