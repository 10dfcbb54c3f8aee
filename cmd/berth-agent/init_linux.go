//go:build linux

package main

import "github.com/berth-dev/berth/guestagent/runtime/libct"

func init() {
	reexecs[libct.InitArg] = libct.InitMain
}
