//go:build !linux

// Command berth-agent is berth's guest agent. It runs only on Linux (inside
// berth's VM or natively on a Linux host); on other systems it builds to a
// binary that says so, so that `go build ./...` works on every host OS.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "berth-agent runs only on Linux; on this system use `berth start`")
	os.Exit(1)
}
