// Package archive reads and writes tar streams confined to a root directory.
//
// It is the one place in berth that turns untrusted tar bytes (image layers,
// `docker cp` uploads) into files. Every create, chmod, chown, utimes, link and
// xattr call is resolved inside the root (openat2 RESOLVE_IN_ROOT where the
// kernel has it, a component-by-component O_NOFOLLOW walk otherwise), so names
// such as "../x", "/etc/passwd", a symlink followed by a write through it, or a
// hardlink to a file outside the root can never touch anything outside it.
//
// Rules applied to every entry:
//   - Names are rooted: leading slashes are dropped, so "/etc/x" lands at
//     root/etc/x. A name that climbs above the root with ".." ("../x",
//     "a/../../x") is refused with ErrUnsafePath, as are whiteouts of "." or
//     "..", a non-directory entry for the root itself and hardlink targets
//     that climb above the root.
//   - Parent directories are resolved inside the root, following symlinks as
//     if the root were "/"; missing ones are created (mode 0755). The last
//     component is never followed: an existing non-directory there is
//     removed and the entry created anew (O_EXCL, mkdirat, symlinkat, mknodat,
//     linkat); an existing directory is kept only when the entry is one.
//   - Symlink targets are data, written verbatim. Hardlink targets are
//     resolved inside the root without following their last component.
//   - Owner (lchown semantics) before mode, so set-id bits survive; xattrs
//     after both; times with AT_SYMLINK_NOFOLLOW. Directory modes and times
//     are applied after the last entry, so read-only directories can be
//     filled and their mtimes are those of the archive.
//   - PAX records naming trusted.overlay.* attributes are dropped; overlay
//     whiteouts come only from whiteout entries.
//   - Entries in a top-level AUFS metadata directory (".wh..wh.plnk", ...) are
//     skipped.
//
// Extraction and WriteTar are implemented for Linux only; elsewhere they
// return an error wrapping ErrUnsupported. Decompress works everywhere.
package archive

import "errors"

// WhiteoutMode says what to do with AUFS-style whiteout entries (".wh.name" and
// ".wh..wh..opq") found in a layer.
type WhiteoutMode int

const (
	// WhiteoutApply deletes the whited-out path (or the opaque dir's contents)
	// from the root, as when flattening layers onto one directory.
	WhiteoutApply WhiteoutMode = iota
	// WhiteoutOverlay writes overlayfs whiteouts: a 0:0 character device for a
	// deleted name and the trusted.overlay.opaque="y" xattr on an opaque
	// directory. Needs CAP_MKNOD and CAP_SYS_ADMIN; used for layer directories
	// that are stacked as overlay lowerdirs.
	WhiteoutOverlay
	// WhiteoutLiteral extracts whiteout names as the ordinary entries they
	// are in the tar, as `docker cp` uploads do (nothing is deleted, no
	// AUFS metadata is skipped).
	WhiteoutLiteral
)

// Defaults for the budgets in Options.
const (
	DefaultMaxBytes   int64 = 64 << 30 // 64 GiB of file content
	DefaultMaxEntries int64 = 1 << 20  // one million tar entries
)

// Options shape and bound an extraction.
type Options struct {
	// Whiteouts selects how whiteout entries are materialised.
	Whiteouts WhiteoutMode
	// MaxBytes bounds the total file content written; 0 means DefaultMaxBytes.
	MaxBytes int64
	// MaxEntries bounds the number of tar entries; 0 means DefaultMaxEntries.
	MaxEntries int64
	// IgnoreOwnership skips lchown (an unprivileged caller cannot chown).
	IgnoreOwnership bool
	// SkipDevices skips block/char device and fifo entries instead of failing
	// (an unprivileged caller cannot mknod). Overlay whiteouts are not skipped.
	SkipDevices bool
	// IgnoreXattrs skips extended attributes other than overlay whiteouts.
	IgnoreXattrs bool
}

// Stats describes what an extraction wrote.
type Stats struct {
	Entries int64 // tar entries processed
	Bytes   int64 // bytes of regular-file content written
}

// Sentinel errors; returned errors wrap these so callers can use errors.Is.
var (
	// ErrUnsafePath reports an entry whose name or link target would resolve
	// outside the root.
	ErrUnsafePath = errors.New("archive: path escapes root")
	// ErrBudget reports an archive over the byte or entry budget.
	ErrBudget = errors.New("archive: size budget exceeded")
	// ErrUnsupported reports an entry type the extractor does not handle.
	ErrUnsupported = errors.New("archive: unsupported entry")
)
