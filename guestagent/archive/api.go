package archive

// CONTRACT FILE (temporary): the helper that owns this package replaces the
// panics below with the implementation and may move these functions to other
// files of the package, keeping the signatures and doc comments.

import (
	"context"
	"io"
)

// Unpack extracts the uncompressed tar stream r into dst, which must not exist.
// It extracts into a temporary sibling directory and renames it to dst only on
// success; on any failure the partial output is removed and dst does not exist.
func Unpack(ctx context.Context, dst string, r io.Reader, opts Options) (Stats, error) {
	panic("archive.Unpack: not yet implemented")
}

// Apply extracts the uncompressed tar stream r into the existing directory
// root, overwriting what is there (the `docker cp` upload case). Entries
// already written stay written if a later entry fails.
func Apply(ctx context.Context, root string, r io.Reader, opts Options) (Stats, error) {
	panic("archive.Apply: not yet implemented")
}

// Decompress returns a reader of the uncompressed stream, detecting gzip, zstd
// or plain tar from the first bytes.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	panic("archive.Decompress: not yet implemented")
}

// WriteTar writes a tar of the file or directory at path (resolved inside root,
// symlinks followed only within root) to w. Entry names start with the base
// name of path, as `docker cp CONTAINER:/path -` produces them.
func WriteTar(ctx context.Context, w io.Writer, root, path string) error {
	panic("archive.WriteTar: not yet implemented")
}
