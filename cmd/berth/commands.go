package main

import "github.com/urfave/cli/v2"

// commands lists the CLI's commands: instance management, then Docker's
// container and image verbs with Docker's flag spellings.
func commands() []*cli.Command {
	var cmds []*cli.Command
	cmds = append(cmds, versionCommand(), infoCommand())
	cmds = append(cmds, runCommands()...)
	cmds = append(cmds, containerCommands()...)
	cmds = append(cmds, imageCommands()...)
	cmds = withInstanceCommands(cmds)
	return cmds
}
