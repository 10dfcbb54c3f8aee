package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/berth-dev/berth/guestagent/sysinit"
)

// asInit hands the process over to sysinit when the kernel started the agent as the VM's init (PID 1,
// argv[0] "/init"); ok is false otherwise. sysinit runs the engine as a supervised child (`/init serve`),
// which takes the normal command path.
func asInit() (code int, ok bool) {
	if os.Getpid() != 1 || len(os.Args) == 0 || os.Args[0] != "/init" {
		return 0, false
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "init", "version", version)
	if err := sysinit.Run(sysinit.Options{Exe: "/init", Logger: log}); err != nil {
		fmt.Fprintf(os.Stderr, "berth-agent init: %v\n", err)
		return 1, true
	}
	return 0, true
}
