// Package archive reads and writes tar streams confined to a root directory.
//
// It is the one place in berth that turns untrusted tar bytes (image layers,
// `docker cp` uploads) into files. Every create, chmod, chown, utimes, link and
// xattr call is resolved inside the root (openat2 RESOLVE_IN_ROOT where the
// kernel has it, a component-by-component O_NOFOLLOW walk otherwise), so names
// such as "../x", "/etc/passwd", a symlink followed by a write through it, or a
// hardlink to a file outside the root can never touch anything outside it.
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
