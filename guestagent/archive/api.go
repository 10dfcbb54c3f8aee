package archive

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Unpack extracts the uncompressed tar stream r into dst, which must not exist.
// It extracts into a temporary sibling directory and renames it to dst only on
// success; on any failure the partial output is removed and dst does not exist.
//
// Unpack does not fsync what it writes: durability (for example one syncfs of
// the store's filesystem before a layer is recorded as committed) is the
// caller's decision. The root directory gets mode 0755 unless the archive has
// an entry for "." that says otherwise.
func Unpack(ctx context.Context, dst string, r io.Reader, opts Options) (Stats, error) {
	return unpack(ctx, dst, r, opts, resolveAuto)
}

// Apply extracts the uncompressed tar stream r into the existing directory
// root, overwriting what is there (the `docker cp` upload case). Entries
// already written stay written if a later entry fails.
//
// An entry for the root itself (".") is ignored: Apply never changes the
// metadata of root.
func Apply(ctx context.Context, root string, r io.Reader, opts Options) (Stats, error) {
	return apply(ctx, root, r, opts, resolveAuto)
}

// Magic numbers of the compressed formats Decompress recognises.
var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// Decompress returns a reader of the uncompressed stream, detecting gzip, zstd
// or plain tar from the first bytes.
//
// Closing the returned reader releases the decompressor; it does not close r.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(len(zstdMagic))
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("archive: read compression header: %w", err)
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("archive: open gzip stream: %w", err)
		}
		return zr, nil
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("archive: open zstd stream: %w", err)
		}
		return zr.IOReadCloser(), nil
	default:
		return io.NopCloser(br), nil
	}
}

// WriteTar writes a tar of the file or directory at path (resolved inside root,
// symlinks followed only within root) to w. Entry names start with the base
// name of path, as `docker cp CONTAINER:/path -` produces them.
//
// Symlinks in the parent components of path are followed as if root were "/".
// A final component that is a symlink is written as a symlink unless path ends
// in "/" (then it is followed, inside root). Symlinks below path are always
// written as symlinks; files with several links are written once, later names
// as hardlinks. Sockets are skipped. Modification times are truncated to whole
// seconds; extended attributes of files and directories are included (except
// trusted.overlay.* and system.*).
func WriteTar(ctx context.Context, w io.Writer, root, path string) error {
	return writeTar(ctx, w, root, path, resolveAuto)
}
