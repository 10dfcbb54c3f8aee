package hcs

import (
	"fmt"
	"strings"
)

// Windows path rules, applied as pure string functions so they are tested on every OS (path/filepath
// follows the build's OS, not Windows').

// reservedNames are DOS device names: as any path component (with or without an extension) they name a
// device, not a file.
var reservedNames = map[string]bool{
	"CON": true, "PRN": true, "AUX": true, "NUL": true, "CONIN$": true, "CONOUT$": true,
	"COM1": true, "COM2": true, "COM3": true, "COM4": true, "COM5": true, "COM6": true, "COM7": true, "COM8": true, "COM9": true,
	"LPT1": true, "LPT2": true, "LPT3": true, "LPT4": true, "LPT5": true, "LPT6": true, "LPT7": true, "LPT8": true, "LPT9": true,
}

func isSep(c byte) bool { return c == '\\' || c == '/' }

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// CleanWindowsPath validates an absolute Windows path and returns its canonical form (upper-case drive
// letter, backslashes, no trailing separator except after a bare drive). It rejects: drive-relative paths
// ("C:..\x", "C:x"), rooted paths without a drive ("\x"), relative paths, device and NT paths ("\\?\",
// "\\.\", "\??\"), UNC paths ("\\server\share") unless allowUNC, "." and ".." components, reserved device
// names (CON, NUL, COM1, …), components ending in a dot or a space (Windows strips those, so two spellings
// would name one file), alternate data streams and characters Windows forbids in names.
func CleanWindowsPath(p string, allowUNC bool) (string, error) {
	if p == "" {
		return "", fmt.Errorf("%w: empty path", ErrInvalidPath)
	}
	var prefix, rest string
	switch {
	case len(p) >= 2 && isSep(p[0]) && isSep(p[1]):
		if len(p) >= 3 && (p[2] == '?' || p[2] == '.') {
			return "", fmt.Errorf("%w: %q: device paths are not allowed", ErrInvalidPath, p)
		}
		if !allowUNC {
			return "", fmt.Errorf("%w: %q: UNC paths are not allowed", ErrInvalidPath, p)
		}
		// \\server\share\rest: server and share (each exactly one separator away) are the prefix.
		head := strings.SplitN(strings.ReplaceAll(p[2:], "/", `\`), `\`, 3)
		if len(head) < 2 || head[0] == "" || head[1] == "" {
			return "", fmt.Errorf("%w: %q: UNC path without server and share", ErrInvalidPath, p)
		}
		for _, c := range head[:2] {
			if err := checkComponent(p, c); err != nil {
				return "", err
			}
		}
		prefix = `\\` + head[0] + `\` + head[1]
		if len(head) == 3 {
			rest = head[2]
		}
	case len(p) >= 3 && p[0] == '\\' && p[1] == '?' && p[2] == '?':
		return "", fmt.Errorf("%w: %q: NT object paths are not allowed", ErrInvalidPath, p)
	case len(p) >= 2 && isLetter(p[0]) && p[1] == ':':
		if len(p) == 2 || !isSep(p[2]) {
			return "", fmt.Errorf("%w: %q: drive-relative paths are not allowed", ErrInvalidPath, p)
		}
		prefix = strings.ToUpper(p[:1]) + ":"
		rest = p[2:]
	case isSep(p[0]):
		return "", fmt.Errorf("%w: %q: rooted path without a drive letter", ErrInvalidPath, p)
	default:
		return "", fmt.Errorf("%w: %q: not an absolute path", ErrInvalidPath, p)
	}
	var out []string
	for _, c := range splitSeps(rest) {
		if c == "" { // doubled or trailing separators
			continue
		}
		if err := checkComponent(p, c); err != nil {
			return "", err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		if strings.HasPrefix(prefix, `\\`) {
			return prefix, nil
		}
		return prefix + `\`, nil
	}
	return prefix + `\` + strings.Join(out, `\`), nil
}

func splitSeps(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == '\\' || r == '/' }) // drops empty parts
}

// checkComponent checks one name of path p.
func checkComponent(p, c string) error {
	switch {
	case c == "." || c == "..":
		return fmt.Errorf("%w: %q: %q components are not allowed", ErrInvalidPath, p, c)
	case strings.ContainsAny(c, `<>:"|?*`):
		return fmt.Errorf("%w: %q: %q contains a character Windows forbids (or an alternate data stream)", ErrInvalidPath, p, c)
	case strings.HasSuffix(c, ".") || strings.HasSuffix(c, " "):
		return fmt.Errorf("%w: %q: %q ends in a dot or a space", ErrInvalidPath, p, c)
	}
	for _, r := range c {
		if r < 0x20 {
			return fmt.Errorf("%w: %q: control character in %q", ErrInvalidPath, p, c)
		}
	}
	base := strings.ToUpper(c)
	if i := strings.IndexByte(base, '.'); i >= 0 {
		base = base[:i]
	}
	if reservedNames[strings.TrimRight(base, " ")] {
		return fmt.Errorf("%w: %q: %q is a reserved device name", ErrInvalidPath, p, c)
	}
	return nil
}

// Bind is a parsed -v bind of a Windows container.
type Bind struct {
	// Source is the host directory (canonical form).
	Source string
	// Destination is the directory in the container (canonical form, with a drive letter).
	Destination string
	// ReadOnly is true for ":ro".
	ReadOnly bool
}

// ParseBind parses a Windows bind "C:\host\dir:C:\ctr\dir[:ro|:rw]" (forward slashes accepted). Both paths
// must pass CleanWindowsPath (the source may be UNC if allowUNC; the destination never), the destination
// must not be a drive root, and named volumes are not supported.
func ParseBind(spec string, allowUNC bool) (Bind, error) {
	src, rest, err := splitBindSource(spec)
	if err != nil {
		return Bind{}, err
	}
	dst, mode := rest, ""
	if i := strings.LastIndexByte(rest, ':'); i > 1 { // past the destination's drive colon
		dst, mode = rest[:i], rest[i+1:]
	}
	var b Bind
	switch strings.ToLower(mode) {
	case "", "rw":
	case "ro":
		b.ReadOnly = true
	default:
		return Bind{}, fmt.Errorf("%w: bind %q: mode %q (want ro or rw)", ErrInvalidMount, spec, mode)
	}
	if b.Source, err = CleanWindowsPath(src, allowUNC); err != nil {
		return Bind{}, fmt.Errorf("%w: bind %q: source: %w", ErrInvalidMount, spec, err)
	}
	if b.Destination, err = CleanWindowsPath(dst, false); err != nil {
		return Bind{}, fmt.Errorf("%w: bind %q: destination: %w", ErrInvalidMount, spec, err)
	}
	if len(b.Destination) == 3 { // "C:\"
		return Bind{}, fmt.Errorf("%w: bind %q: destination cannot be a drive root", ErrInvalidMount, spec)
	}
	return b, nil
}

// splitBindSource splits spec after its source: a drive path ends at the first ':' after the drive's,
// a UNC path at the first ':'.
func splitBindSource(spec string) (src, rest string, err error) {
	start := 0
	if len(spec) >= 2 && isLetter(spec[0]) && spec[1] == ':' {
		start = 2
	} else if !(len(spec) >= 2 && isSep(spec[0]) && isSep(spec[1])) {
		name, _, _ := strings.Cut(spec, ":")
		return "", "", fmt.Errorf("%w: bind %q: %q is not an absolute host path (named volumes are not supported)", ErrInvalidMount, spec, name)
	}
	i := strings.IndexByte(spec[start:], ':')
	if i < 0 {
		return "", "", fmt.Errorf("%w: bind %q: no container path", ErrInvalidMount, spec)
	}
	return spec[:start+i], spec[start+i+1:], nil
}
