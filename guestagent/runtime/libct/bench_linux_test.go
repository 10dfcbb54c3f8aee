package libct

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func BenchmarkReadonlySelf(b *testing.B) {
	for i := 0; i < b.N; i++ {
		p, err := readonlySelf()
		if err != nil {
			b.Fatal(err)
		}
		var fd int
		_, _ = fmt.Sscan(strings.TrimPrefix(p, "/proc/self/fd/"), &fd)
		unix.Close(fd)
	}
}

func BenchmarkSealedSelfCopy(b *testing.B) {
	for i := 0; i < b.N; i++ {
		p, err := sealedSelfCopy()
		if err != nil {
			b.Fatal(err)
		}
		var fd int
		_, _ = fmt.Sscan(strings.TrimPrefix(p, "/proc/self/fd/"), &fd)
		unix.Close(fd)
	}
}
