package container

import (
	"fmt"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// overlayData builds overlayfs mount data. With base set, lowerdirs are
// given relative to it (the mount is then made from base as working
// directory) to fit long layer lists into the one-page limit.
func overlayData(layers []string, upper, work, base string) (string, error) {
	lowers := make([]string, len(layers))
	for i, l := range layers {
		if strings.ContainsAny(l, ":,") {
			return "", fmt.Errorf("%w: layer path %q contains ':' or ','", ErrInvalid, l)
		}
		lowers[i] = l
		if base != "" {
			rel, err := filepath.Rel(base, l)
			if err != nil {
				return "", fmt.Errorf("%w: layer %s: %v", ErrInvalid, l, err)
			}
			lowers[i] = rel
		}
	}
	for _, p := range []string{upper, work} {
		if strings.ContainsAny(p, ":,") {
			return "", fmt.Errorf("%w: path %q contains ':' or ','", ErrInvalid, p)
		}
	}
	return "lowerdir=" + strings.Join(lowers, ":") + ",upperdir=" + upper + ",workdir=" + work, nil
}

// commonParent is the deepest directory containing every path.
func commonParent(paths []string) string {
	if len(paths) == 0 {
		return "/"
	}
	parent := filepath.Dir(filepath.Clean(paths[0]))
	for _, p := range paths[1:] {
		p = filepath.Clean(p)
		for parent != "/" && parent != "." && !strings.HasPrefix(p, parent+string(filepath.Separator)) {
			parent = filepath.Dir(parent)
		}
	}
	return parent
}

// clampRlimits lowers each rlimit to the hard limit own reports for its type.
func clampRlimits(rls []specs.POSIXRlimit, own func(typ string) (uint64, bool)) {
	for i := range rls {
		max, ok := own(rls[i].Type)
		if !ok {
			continue
		}
		rls[i].Hard = min(rls[i].Hard, max)
		rls[i].Soft = min(rls[i].Soft, rls[i].Hard)
	}
}
