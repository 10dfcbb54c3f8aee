package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// vmImageDirs lists where the installers put the VM image for arch, relative to the berth binary exe
// (symlinks resolved): deb/rpm /usr/bin/berth → /usr/share/berth/vm/ARCH; Windows
// Program Files\berth\vm\ARCH; Homebrew bin/berth → libexec/vm/ARCH.
func vmImageDirs(exe, arch string) []string {
	d := filepath.Dir(exe)
	return []string{
		filepath.Join(d, "..", "share", "berth", "vm", arch),
		filepath.Join(d, "vm", arch),
		filepath.Join(d, "..", "libexec", "vm", arch),
	}
}

// vmManifest is the part of vmimage's manifest.json that `berth version` prints.
type vmManifest struct {
	KernelRelease string `json:"kernelRelease"`
	Artifacts     map[string]struct {
		SHA256 string `json:"sha256"`
	} `json:"artifacts"`
}

// printVMImage writes the first VM image found in dirs: its directory, kernel release and the sha256
// of each artifact, as its manifest.json records them.
func printVMImage(w io.Writer, dirs []string) {
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "manifest.json"))
		if err != nil {
			continue
		}
		var m vmManifest
		if err := json.Unmarshal(b, &m); err != nil {
			fmt.Fprintf(w, " vm image:   %s: unreadable manifest.json: %v\n", filepath.Clean(d), err)
			return
		}
		fmt.Fprintf(w, " vm image:   %s (kernel %s)\n", filepath.Clean(d), m.KernelRelease)
		for _, n := range slices.Sorted(maps.Keys(m.Artifacts)) {
			fmt.Fprintf(w, "   %-19s sha256:%s\n", n, m.Artifacts[n].SHA256)
		}
		return
	}
	fmt.Fprintln(w, " vm image:   none installed")
}
