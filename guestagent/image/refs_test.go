package image

import (
	"errors"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParseRef(t *testing.T) {
	d := digest.FromString("x")
	for _, tc := range []struct {
		in, key, familiar, path string
		insecure                bool
	}{
		{"busybox", "docker.io/library/busybox:latest", "busybox:latest", "library/busybox", false},
		{"busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36", "library/busybox", false},
		{"docker.io/library/busybox:latest", "docker.io/library/busybox:latest", "busybox:latest", "library/busybox", false},
		{"index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest", "library/busybox", false},
		{"user/app:2", "docker.io/user/app:2", "user/app:2", "user/app", false},
		{"library/a/b:1", "docker.io/library/a/b:1", "library/a/b:1", "library/a/b", false},
		{"localhost:5000/x:1", "localhost:5000/x:1", "localhost:5000/x:1", "x", true},
		{"localhost/x", "localhost/x:latest", "localhost/x:latest", "x", true},
		{"127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:latest", "127.0.0.1:5000/a/b:latest", "a/b", true},
		{"[::1]:5000/x:1", "[::1]:5000/x:1", "[::1]:5000/x:1", "x", true},
		{"ghcr.io/o/r:v", "ghcr.io/o/r:v", "ghcr.io/o/r:v", "o/r", false},
		{"busybox@" + d.String(), "docker.io/library/busybox@" + d.String(), "busybox@" + d.String(), "library/busybox", false},
	} {
		r, err := parseRef(tc.in)
		if err != nil {
			t.Errorf("parseRef(%q): %v", tc.in, err)
			continue
		}
		if r.key != tc.key || r.familiar() != tc.familiar || r.path != tc.path {
			t.Errorf("parseRef(%q) = key %q familiar %q path %q, want %q %q %q", tc.in, r.key, r.familiar(), r.path, tc.key, tc.familiar, tc.path)
		}
		if got := r.ref.Context().Scheme() == "http"; got != tc.insecure {
			t.Errorf("parseRef(%q): plain HTTP %v, want %v", tc.in, got, tc.insecure)
		}
	}
	for _, bad := range []string{"", " x", "UPPER", "a:b:c", "x@sha256:zz", "https://x/y", strings.Repeat("f", 64)} {
		if _, err := parseRef(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("parseRef(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestRepoOfKey(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io/library/busybox:latest": "docker.io/library/busybox",
		"localhost:5000/x:1":               "localhost:5000/x",
		"localhost:5000/x":                 "localhost:5000/x",
		"localhost:5000/x@sha256:00":       "localhost:5000/x",
	} {
		if got := repoOfKey(in); got != want {
			t.Errorf("repoOfKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestChainIDs(t *testing.T) {
	a, b, c := digest.FromString("a"), digest.FromString("b"), digest.FromString("c")
	got := chainIDs([]digest.Digest{a, b, c})
	ab := digest.FromString(a.String() + " " + b.String())
	abc := digest.FromString(ab.String() + " " + c.String())
	if got[0] != a || got[1] != ab || got[2] != abc {
		t.Errorf("chainIDs = %v", got)
	}
}

func TestChoosePlatform(t *testing.T) {
	desc := func(os, arch, variant string) ocispec.Descriptor {
		return ocispec.Descriptor{Digest: digest.FromString(os + arch + variant), Platform: &ocispec.Platform{OS: os, Architecture: arch, Variant: variant}}
	}
	idx := ocispec.Index{Manifests: []ocispec.Descriptor{
		{Digest: digest.FromString("attestation"), Platform: &ocispec.Platform{OS: "unknown", Architecture: "unknown"}},
		desc("linux", "amd64", ""), desc("linux", "arm", "v6"), desc("linux", "arm", "v7"), desc("linux", "arm64", "v8"),
	}}
	for _, tc := range []struct {
		want ocispec.Platform
		got  ocispec.Descriptor
	}{
		{ocispec.Platform{OS: "linux", Architecture: "amd64"}, idx.Manifests[1]},
		{ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, idx.Manifests[3]},
		{ocispec.Platform{OS: "linux", Architecture: "arm"}, idx.Manifests[2]},
		{ocispec.Platform{OS: "linux", Architecture: "arm64"}, idx.Manifests[4]},
		{ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, idx.Manifests[4]},
	} {
		d, err := choosePlatform(idx, tc.want)
		if err != nil || d.Digest != tc.got.Digest {
			t.Errorf("choosePlatform(%s) = %v, %v", platformString(tc.want), d.Platform, err)
		}
	}
	_, err := choosePlatform(idx, ocispec.Platform{OS: "windows", Architecture: "amd64"})
	if !errors.Is(err, ErrNotFound) || err.Error() != "no matching manifest for windows/amd64 in the manifest list entries: image: not found" {
		t.Errorf("no match: %v", err)
	}
}

func TestIsSingleReference(t *testing.T) {
	d := "@" + digest.FromString("m").String()
	for _, tc := range []struct {
		keys []string
		want bool
	}{
		{nil, false},
		{[]string{"docker.io/library/a:1"}, true},
		{[]string{"docker.io/library/a:1", "docker.io/library/a" + d}, true},
		{[]string{"docker.io/library/a:1", "docker.io/library/a:2"}, false},
		{[]string{"docker.io/library/a:1", "docker.io/library/b" + d}, false},
		{[]string{"docker.io/library/a" + d, "docker.io/library/b" + d}, false},
		{[]string{"docker.io/library/a" + d, "docker.io/library/a@" + digest.FromString("n").String()}, true},
	} {
		if got := isSingleReference(tc.keys); got != tc.want {
			t.Errorf("isSingleReference(%v) = %v, want %v", tc.keys, got, tc.want)
		}
	}
}

func TestSniffMediaType(t *testing.T) {
	for in, want := range map[string]string{
		`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}`: "application/vnd.docker.distribution.manifest.v2+json",
		`{"schemaVersion":2,"manifests":[]}`:                                                     ocispec.MediaTypeImageIndex,
		`{"schemaVersion":2,"config":{}}`:                                                        ocispec.MediaTypeImageManifest,
		`{"schemaVersion":1,"fsLayers":[]}`:                                                      "application/vnd.docker.distribution.manifest.v1+json",
		`not json`:                                                                               "",
	} {
		if got := sniffMediaType([]byte(in)); got != want {
			t.Errorf("sniffMediaType(%s) = %q, want %q", in, got, want)
		}
	}
}
