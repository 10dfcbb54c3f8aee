package specgen

import (
	"fmt"
	"strings"
)

// DefaultPathEnv is the PATH a container gets when neither the image nor the
// user sets one (Docker's).
const DefaultPathEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func envKey(kv string) string {
	k, _, _ := strings.Cut(kv, "=")
	return k
}

// validateEnv rejects entries without a key.
func validateEnv(env []string) error {
	for _, e := range env {
		if envKey(e) == "" {
			return fmt.Errorf("invalid environment variable %q: empty name: %w", e, ErrInvalid)
		}
	}
	return nil
}

// mergeEnv returns base with overrides applied in order, as Docker does: an
// override KEY=VALUE replaces the entry with the same key in place (or is
// appended), a bare KEY removes it. Duplicate keys in base collapse to the
// first position with the last value.
func mergeEnv(base, overrides []string) []string {
	out := make([]string, 0, len(base)+len(overrides))
	idx := make(map[string]int)
	apply := func(e string) {
		k, _, hasValue := strings.Cut(e, "=")
		i, ok := idx[k]
		switch {
		case !hasValue:
			if ok {
				out[i] = ""
				delete(idx, k)
			}
		case ok:
			out[i] = e
		default:
			idx[k] = len(out)
			out = append(out, e)
		}
	}
	for _, e := range base {
		apply(e)
	}
	for _, e := range overrides {
		apply(e)
	}
	res := out[:0]
	for _, e := range out {
		if e != "" {
			res = append(res, e)
		}
	}
	return res
}

func hasEnv(env []string, key string) bool {
	for _, e := range env {
		if envKey(e) == key {
			return true
		}
	}
	return false
}

func getEnv(env []string, key string) (string, bool) {
	for _, e := range env {
		if k, v, ok := strings.Cut(e, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}
