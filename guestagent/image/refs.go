package image

import (
	"fmt"
	"net"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	digest "github.com/opencontainers/go-digest"
)

// dockerHub is the registry name berth uses in normalized references, as
// Docker does; go-containerregistry calls it index.docker.io.
const dockerHub = "docker.io"

// imageRef is a parsed image reference in the forms the store needs.
type imageRef struct {
	ref     name.Reference // for go-containerregistry (insecure for loopback registries)
	key     string         // normalized: "docker.io/library/busybox:latest", "localhost:5000/x@sha256:…"
	repoKey string         // normalized repository: "docker.io/library/busybox"
	path    string         // repository path without the registry: "library/busybox"
	tag     string         // "" for a digest reference
	digest  digest.Digest  // "" for a tag reference
}

// familiar is the short form Docker shows ("busybox:latest").
func (r imageRef) familiar() string { return familiarName(r.key) }

// parseRef parses a reference the way Docker does: the registry defaults to
// Docker Hub, the tag to "latest". Loopback registries are spoken to over
// plain HTTP.
func parseRef(s string) (imageRef, error) {
	if s == "" || strings.TrimSpace(s) != s {
		return imageRef{}, fmt.Errorf("invalid reference format %q: %w", s, ErrInvalid)
	}
	if isFullHex(s) {
		return imageRef{}, fmt.Errorf("invalid repository name %q, cannot specify 64-byte hexadecimal strings: %w", s, ErrInvalid)
	}
	opts := []name.Option{name.WithDefaultRegistry(name.DefaultRegistry)}
	ref, err := name.ParseReference(s, opts...)
	if err != nil {
		return imageRef{}, fmt.Errorf("invalid reference format %q: %v: %w", s, err, ErrInvalid)
	}
	if isLoopbackRegistry(ref.Context().RegistryStr()) {
		if ref, err = name.ParseReference(s, append(opts, name.Insecure)...); err != nil {
			return imageRef{}, fmt.Errorf("invalid reference format %q: %v: %w", s, err, ErrInvalid)
		}
	}
	reg := ref.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		reg = dockerHub
	}
	r := imageRef{ref: ref, path: ref.Context().RepositoryStr()}
	r.repoKey = reg + "/" + r.path
	switch v := ref.(type) {
	case name.Tag:
		r.tag = v.TagStr()
		r.key = r.repoKey + ":" + r.tag
	case name.Digest:
		d, err := digest.Parse(v.DigestStr())
		if err != nil {
			return imageRef{}, fmt.Errorf("invalid reference format %q: %v: %w", s, err, ErrInvalid)
		}
		r.digest = d
		r.key = r.repoKey + "@" + d.String()
	}
	return r, nil
}

// familiarName shortens a normalized reference as Docker displays it:
// "docker.io/library/busybox:latest" → "busybox:latest",
// "docker.io/user/app:1" → "user/app:1"; other registries stay.
func familiarName(key string) string {
	rest, ok := strings.CutPrefix(key, dockerHub+"/")
	if !ok {
		return key
	}
	if short, ok := strings.CutPrefix(rest, "library/"); ok {
		repo := short
		if i := strings.IndexAny(repo, ":@"); i >= 0 {
			repo = repo[:i]
		}
		if !strings.Contains(repo, "/") {
			return short
		}
	}
	return rest
}

// isDigestKey reports whether a normalized reference names a digest.
func isDigestKey(key string) bool { return strings.Contains(key, "@") }

// repoOfKey returns the repository part of a normalized reference.
func repoOfKey(key string) string {
	if i := strings.Index(key, "@"); i >= 0 {
		return key[:i]
	}
	slash := strings.LastIndex(key, "/")
	if i := strings.LastIndex(key, ":"); i > slash {
		return key[:i]
	}
	return key
}

// isLoopbackRegistry reports whether a registry host (with optional port) is
// this machine, where Docker too allows plain HTTP.
func isLoopbackRegistry(reg string) bool {
	host := reg
	if h, _, err := net.SplitHostPort(reg); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func isFullHex(s string) bool { return len(s) == 64 && isHex(s) }

// shortID is the 12-hex form Docker prints for layers and images.
func shortID(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		return e[:12]
	}
	return e
}
