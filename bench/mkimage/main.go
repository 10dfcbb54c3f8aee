// Command mkimage writes berth's busybox test image (from Debian's
// busybox-static) as a `docker save` tarball, so benchmarks can load the same
// image into berth and into dockerd without a registry.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berth-dev/berth/guestagent/image/imagetest"
)

func main() {
	out := flag.String("o", "busybox.tar", "output tarball")
	ref := flag.String("t", "bench/busybox:1", "image reference to tag it with")
	flag.Parse()
	if err := run(*out, *ref); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(out, ref string) error {
	img, err := imagetest.Busybox()
	if err != nil {
		return err
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(out, tag, img)
}
