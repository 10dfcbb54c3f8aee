package debpkg

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCacheVerify(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.deb")
	if err := os.WriteFile(p, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	const sum = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	if err := VerifyFile(p, strings.ToUpper(sum)); err != nil {
		t.Fatal(err)
	}
	if err := VerifyFile(p, strings.Repeat("0", 64)); !errors.Is(err, ErrChecksum) {
		t.Fatalf("wrong hash: %v", err)
	}
	if got := CachePath("/c", sum); got != filepath.Join("/c", "sha256", sum+".deb") {
		t.Fatal(got)
	}
}

func TestAptOptionsArePrivate(t *testing.T) {
	a := &Apt{Arch: "arm64", Dir: "/x/apt"}
	opts := strings.Join(a.options(), " ")
	for _, want := range []string{
		"APT::Architecture=arm64", "APT::Architectures::=arm64", "Dir::State::Lists=/x/apt/lists",
		"Dir::State::status=/x/apt/status", "Dir::Etc::SourceList=/dev/null", "Dir::Cache=/x/apt/cache",
	} {
		if !strings.Contains(opts, want) {
			t.Errorf("apt options lack %q: %s", want, opts)
		}
	}
}
