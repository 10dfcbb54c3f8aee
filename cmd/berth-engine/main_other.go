//go:build !windows

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "berth-engine is for Windows Server only (Windows containers through HCS); on this system use `berth start`")
	os.Exit(2)
}
