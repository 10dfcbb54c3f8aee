package engine

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// The API versions berth serves. The response types come from
// github.com/moby/moby/api, whose release matches APIVersion.
const (
	APIVersion    = "1.56"
	MinAPIVersion = "1.24"
)

type ctxKey int

const versionKey ctxKey = iota

// requestVersion returns the API version of the request: the /v1.NN prefix it
// came with, or APIVersion when it had none.
func requestVersion(ctx context.Context) string {
	if v, ok := ctx.Value(versionKey).(string); ok {
		return v
	}
	return APIVersion
}

// splitVersion removes a leading "/vX.Y" from path. It returns the version
// ("" when there was none) and the rest of the path.
func splitVersion(path string) (version, rest string) {
	if !strings.HasPrefix(path, "/v") {
		return "", path
	}
	end := strings.IndexByte(path[1:], '/')
	if end < 0 {
		return "", path
	}
	v := path[2 : end+1]
	if _, _, ok := parseVersion(v); !ok {
		return "", path
	}
	return v, path[end+1:]
}

// parseVersion parses "major.minor".
func parseVersion(v string) (major, minor int, ok bool) {
	a, b, found := strings.Cut(v, ".")
	if !found {
		return 0, 0, false
	}
	ma, err1 := strconv.Atoi(a)
	mi, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || ma < 0 || mi < 0 {
		return 0, 0, false
	}
	return ma, mi, true
}

// compareVersions compares two "major.minor" versions like strings.Compare;
// both must be valid.
func compareVersions(a, b string) int {
	amaj, amin, _ := parseVersion(a)
	bmaj, bmin, _ := parseVersion(b)
	switch {
	case amaj != bmaj:
		return cmpInt(amaj, bmaj)
	default:
		return cmpInt(amin, bmin)
	}
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// checkVersion reports, with dockerd's wording, a version outside the
// supported range.
func checkVersion(v string) error {
	if compareVersions(v, APIVersion) > 0 {
		return invalidf("client version %s is too new. Maximum supported API version is %s", v, APIVersion)
	}
	if compareVersions(v, MinAPIVersion) < 0 {
		return invalidf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", v, MinAPIVersion)
	}
	return nil
}

// withVersion strips the version prefix, rejects unsupported versions and
// sets the headers dockerd sets on every response.
func (s *Server) withVersion(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Api-Version", APIVersion)
		h.Set("Ostype", s.osType)
		h.Set("Docker-Experimental", "false")
		h.Set("Server", fmt.Sprintf("berth/%s (linux)", s.version))
		v, rest := splitVersion(r.URL.Path)
		if v != "" {
			if err := checkVersion(v); err != nil {
				writeError(w, err)
				return
			}
			r2 := r.Clone(context.WithValue(r.Context(), versionKey, v))
			r2.URL.Path = rest
			r2.URL.RawPath = ""
			r = r2
		}
		next.ServeHTTP(w, r)
	})
}
