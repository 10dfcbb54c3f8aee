// Package initramfs writes reproducible newc cpio archives, compressed with
// zstd or gzip, with github.com/u-root/u-root/pkg/cpio.
//
// Reproducible means: the same entries give the same bytes. Entries are
// sorted by path, every missing parent directory is added, all timestamps
// are MTime (fixed), owners are root unless set, inode numbers are assigned
// in order, and the compressors run single-threaded with fixed settings.
//
// The kernel unpacks concatenated archives, each compressed or not, one
// after the other (later entries overwrite earlier ones): Concat joins the
// base image and a per-instance archive with the zero padding the kernel
// skips between them.
package initramfs
