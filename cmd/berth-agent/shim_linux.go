package main

import "github.com/berth-dev/berth/guestagent/runtime/shim"

// The per-container monitor: `berth-agent shim <container-dir>`, started by
// the container manager.
func init() { reexecs[shim.Arg] = shim.Main }
