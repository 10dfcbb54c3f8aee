package archive

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Whiteout prefixes as written by docker and the OCI image spec.
const (
	whiteoutPrefix     = ".wh."
	whiteoutMetaPrefix = ".wh..wh."
	whiteoutOpaque     = ".wh..wh..opq"
)

// xattr names and PAX record keys.
const (
	paxXattrPrefix      = "SCHILY.xattr."
	overlayXattrPrefix  = "trusted.overlay."
	overlayOpaqueXattr  = "trusted.overlay.opaque"
	systemXattrPrefix   = "system."
	defaultImplicitMode = 0o755
)

// cleanName turns a tar entry name (or hardlink target) into a clean path
// relative to the extraction root: "" for the root itself, otherwise a
// slash-separated path with no ".", ".." or empty components. Leading slashes
// are dropped (names are rooted, as Docker treats them); a name that climbs
// above the root with ".." is refused with ErrUnsafePath.
func cleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("name %q: contains NUL: %w", name, ErrUnsafePath)
	}
	trimmed := strings.TrimLeft(name, "/")
	c := path.Clean(trimmed)
	if c == "." {
		return "", nil
	}
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("name %q: %w", name, ErrUnsafePath)
	}
	return c, nil
}

// splitName splits a clean relative name into its parent ("" for the root)
// and last component.
func splitName(clean string) (dir, base string) {
	i := strings.LastIndexByte(clean, '/')
	if i < 0 {
		return "", clean
	}
	return clean[:i], clean[i+1:]
}

// joinName joins a clean parent ("" for the root) and a component.
func joinName(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + "/" + base
}

// whiteoutKind classifies an entry's last component.
type whiteoutKind int

const (
	notWhiteout     whiteoutKind = iota
	whiteoutFile                 // ".wh.NAME": NAME is deleted
	whiteoutOpaqueD              // ".wh..wh..opq": the directory is opaque
	whiteoutMeta                 // other ".wh..wh.*": AUFS metadata, ignored
)

// classifyWhiteout says whether base is a whiteout and, for a plain whiteout,
// which name it hides. It refuses hidden names that are not a single
// component (".", "..", empty).
func classifyWhiteout(base string) (whiteoutKind, string, error) {
	switch {
	case !strings.HasPrefix(base, whiteoutPrefix):
		return notWhiteout, "", nil
	case base == whiteoutOpaque:
		return whiteoutOpaqueD, "", nil
	case strings.HasPrefix(base, whiteoutMetaPrefix):
		return whiteoutMeta, "", nil
	}
	hidden := strings.TrimPrefix(base, whiteoutPrefix)
	if hidden == "" || hidden == "." || hidden == ".." || strings.ContainsRune(hidden, '/') {
		return notWhiteout, "", fmt.Errorf("whiteout %q: %w", base, ErrUnsafePath)
	}
	return whiteoutFile, hidden, nil
}

// isAUFSMeta reports whether clean lies in a top-level AUFS metadata
// directory (".wh..wh.plnk", ".wh..wh.aufs", ...), which layers produced by
// old Docker versions carry and which is never extracted. (Hardlinks to
// files in .wh..wh.plnk are therefore not resolvable.)
func isAUFSMeta(clean string) bool {
	first, _, _ := strings.Cut(clean, "/")
	return strings.HasPrefix(first, whiteoutMetaPrefix) && first != whiteoutOpaque
}

// xattr is one extended attribute of a tar entry.
type xattr struct {
	name  string
	value string
}

// xattrsFromPAX extracts the extended attributes recorded in PAX records
// (SCHILY.xattr.NAME), sorted by name. Attributes overlayfs interprets
// (trusted.overlay.*) are dropped: an image must not be able to plant
// redirects or opaque markers except through whiteout entries.
func xattrsFromPAX(records map[string]string) []xattr {
	var out []xattr
	for k, v := range records {
		name, ok := strings.CutPrefix(k, paxXattrPrefix)
		if !ok || name == "" || strings.HasPrefix(name, overlayXattrPrefix) {
			continue
		}
		out = append(out, xattr{name: name, value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// exportXattr says whether WriteTar includes the attribute name.
func exportXattr(name string) bool {
	return !strings.HasPrefix(name, overlayXattrPrefix) && !strings.HasPrefix(name, systemXattrPrefix)
}

// layerNames records which paths the layer being extracted wrote, so that an
// opaque-directory marker in WhiteoutApply mode removes only lower content.
// A name maps to true when an entry wrote it and to false when it is only an
// ancestor of written entries.
type layerNames map[string]bool

// add records clean as written and its ancestors as ancestors.
func (l layerNames) add(clean string) {
	l[clean] = true
	for d, _ := splitName(clean); d != ""; d, _ = splitName(d) {
		if _, ok := l[d]; ok {
			return
		}
		l[d] = false
	}
}

// has reports whether clean was written by this stream or holds what it
// wrote.
func (l layerNames) has(clean string) bool {
	_, ok := l[clean]
	return ok
}
