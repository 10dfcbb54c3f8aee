package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// copyBufs pools the copy buffers of file contents.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

func normalize(opts Options) Options {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	return opts
}

func unpack(ctx context.Context, dst string, r io.Reader, opts Options, mode resolveMode) (Stats, error) {
	if _, err := os.Lstat(dst); err == nil {
		return Stats{}, fmt.Errorf("archive: unpack to %s: %w", dst, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Stats{}, fmt.Errorf("archive: unpack to %s: %w", dst, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".unpack-")
	if err != nil {
		return Stats{}, fmt.Errorf("archive: unpack to %s: %w", dst, err)
	}
	st, err := unpackInto(ctx, tmp, r, opts, mode)
	if err == nil {
		if err = renameNoReplace(tmp, dst); err != nil {
			err = fmt.Errorf("archive: unpack to %s: %w", dst, err)
		}
	}
	if err != nil {
		if rerr := removeTree(tmp); rerr != nil {
			err = errors.Join(err, fmt.Errorf("archive: remove partial output %s: %w", tmp, rerr))
		}
		return st, err
	}
	return st, nil
}

func unpackInto(ctx context.Context, tmp string, r io.Reader, opts Options, mode resolveMode) (Stats, error) {
	root, err := openRoot(tmp, mode)
	if err != nil {
		return Stats{}, fmt.Errorf("archive: %w", err)
	}
	defer root.close()
	if err := unix.Fchmod(root.fd, defaultImplicitMode); err != nil {
		return Stats{}, fmt.Errorf("archive: chmod %s: %w", tmp, err)
	}
	e := newExtractor(ctx, root, opts, true)
	err = e.run(r)
	return e.stats, err
}

func apply(ctx context.Context, rootPath string, r io.Reader, opts Options, mode resolveMode) (Stats, error) {
	root, err := openRoot(rootPath, mode)
	if err != nil {
		return Stats{}, fmt.Errorf("archive: %w", err)
	}
	defer root.close()
	e := newExtractor(ctx, root, opts, false)
	err = e.run(r)
	return e.stats, err
}

// renameNoReplace renames a directory to a name that must not exist.
func renameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if err != unix.EINVAL && err != unix.ENOSYS {
		if err != nil {
			return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
		}
		return nil
	}
	// Filesystems without RENAME_NOREPLACE: check, then rename.
	if _, err := os.Lstat(to); err == nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: fs.ErrExist}
	}
	return os.Rename(from, to)
}

// removeTree removes path and everything below it without following
// symlinks, also when directories in it are read-only.
func removeTree(path string) error {
	pfd, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	return removeAt(pfd, filepath.Base(path))
}

// fdWriter writes to a blocking file descriptor without the runtime poller
// registration an *os.File would attempt for every extracted file.
type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(int(w), p[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.ErrShortWrite
		}
		n += m
	}
	return n, nil
}

// dirMeta is what is applied to a directory after all entries are written:
// its mode (a read-only directory would refuse later entries) and its times
// (later entries change them).
type dirMeta struct {
	name         string
	mode         uint32
	atime, mtime time.Time
}

// extractor writes one tar stream below a root.
type extractor struct {
	ctx      context.Context
	root     *rootFS
	opts     Options
	unpack   bool       // an entry for "." sets the root's metadata
	layer    layerNames // names this stream wrote (WhiteoutApply only)
	dirs     []dirMeta
	dirIndex map[string]int
	stats    Stats
}

func newExtractor(ctx context.Context, root *rootFS, opts Options, unpack bool) *extractor {
	opts = normalize(opts)
	e := &extractor{ctx: ctx, root: root, opts: opts, unpack: unpack, dirIndex: map[string]int{}}
	if opts.Whiteouts == WhiteoutApply {
		e.layer = layerNames{}
	}
	return e
}

func (e *extractor) run(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		if err := e.ctx.Err(); err != nil {
			return fmt.Errorf("archive: after %d entries: %w", e.stats.Entries, err)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("archive: read tar after %d entries: %w", e.stats.Entries, err)
		}
		e.stats.Entries++
		if e.stats.Entries > e.opts.MaxEntries {
			return fmt.Errorf("archive: entry %q: more than %d entries: %w", hdr.Name, e.opts.MaxEntries, ErrBudget)
		}
		if err := e.entry(tr, hdr); err != nil {
			return fmt.Errorf("archive: entry %q: %w", hdr.Name, err)
		}
	}
	if err := e.finishDirs(); err != nil {
		return fmt.Errorf("archive: directory metadata: %w", err)
	}
	return nil
}

func (e *extractor) entry(tr *tar.Reader, hdr *tar.Header) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "" {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("type %q would replace the root: %w", hdr.Typeflag, ErrUnsafePath)
		}
		if !e.unpack {
			return nil
		}
		return e.rootDir(hdr)
	}
	if e.opts.Whiteouts != WhiteoutLiteral {
		if isAUFSMeta(name) {
			return nil
		}
		dir, base := splitName(name)
		kind, hidden, err := classifyWhiteout(base)
		if err != nil {
			return err
		}
		switch kind {
		case whiteoutFile:
			return e.whiteout(dir, hidden)
		case whiteoutOpaqueD:
			return e.opaque(dir)
		case whiteoutMeta:
			return nil
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = e.mkdir(hdr, name)
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse, 0:
		err = e.file(tr, hdr, name)
	case tar.TypeSymlink:
		err = e.symlink(hdr, name)
	case tar.TypeLink:
		err = e.hardlink(hdr, name)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if e.opts.SkipDevices {
			return nil
		}
		err = e.device(hdr, name)
	default:
		return fmt.Errorf("type %q: %w", hdr.Typeflag, ErrUnsupported)
	}
	if err == nil && e.layer != nil {
		e.layer.add(name)
	}
	return err
}

func (e *extractor) xattrs(hdr *tar.Header) []xattr {
	if e.opts.IgnoreXattrs {
		return nil
	}
	return xattrsFromPAX(hdr.PAXRecords)
}

func perm(hdr *tar.Header) uint32 { return uint32(hdr.Mode) & 0o7777 }

// deferDir records directory metadata for finishDirs; a later entry for the
// same directory replaces an earlier one.
func (e *extractor) deferDir(name string, hdr *tar.Header) {
	d := dirMeta{name: name, mode: perm(hdr), atime: hdr.AccessTime, mtime: hdr.ModTime}
	if i, ok := e.dirIndex[name]; ok {
		e.dirs[i] = d
		return
	}
	e.dirIndex[name] = len(e.dirs)
	e.dirs = append(e.dirs, d)
}

func (e *extractor) rootDir(hdr *tar.Header) error {
	if !e.opts.IgnoreOwnership {
		if err := unix.Fchown(e.root.fd, hdr.Uid, hdr.Gid); err != nil {
			return &os.PathError{Op: "chown", Path: "/", Err: err}
		}
	}
	if err := fsetXattrs(e.root.fd, e.xattrs(hdr)); err != nil {
		return err
	}
	e.deferDir("", hdr)
	return nil
}

func (e *extractor) mkdir(hdr *tar.Header, name string) error {
	pfd, base, err := e.root.parentDir(name, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	err = unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err == nil {
			if err := removeAt(pfd, base); err != nil {
				return &os.PathError{Op: "remove", Path: name, Err: err}
			}
		}
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
			return &os.PathError{Op: "mkdir", Path: name, Err: err}
		}
	}
	if err := e.chownAt(pfd, base, name, hdr); err != nil {
		return err
	}
	if err := setXattrsAt(pfd, base, e.xattrs(hdr)); err != nil {
		return err
	}
	e.deferDir(name, hdr)
	return nil
}

func (e *extractor) chownAt(pfd int, base, name string, hdr *tar.Header) error {
	if e.opts.IgnoreOwnership {
		return nil
	}
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "lchown", Path: name, Err: err}
	}
	return nil
}

func (e *extractor) utimesAt(pfd int, base, name string, atime, mtime time.Time) error {
	if atime.IsZero() {
		atime = mtime
	}
	at, err := unix.TimeToTimespec(atime)
	if err != nil {
		return &os.PathError{Op: "utimes", Path: name, Err: err}
	}
	mt, err := unix.TimeToTimespec(mtime)
	if err != nil {
		return &os.PathError{Op: "utimes", Path: name, Err: err}
	}
	if err := unix.UtimesNanoAt(pfd, base, []unix.Timespec{at, mt}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: name, Err: err}
	}
	return nil
}

// createAt runs create (mkdirat, symlinkat, mknodat, linkat, openat O_EXCL)
// and, if the name exists, removes what is there and tries once more. Nothing
// existing is ever opened for writing or followed.
func createAt(pfd int, base, name, op string, create func() error) error {
	err := create()
	if err == unix.EEXIST {
		if rerr := removeAt(pfd, base); rerr != nil {
			return &os.PathError{Op: "remove", Path: name, Err: rerr}
		}
		err = create()
	}
	if err != nil {
		return &os.PathError{Op: op, Path: name, Err: err}
	}
	return nil
}

func (e *extractor) file(tr io.Reader, hdr *tar.Header, name string) error {
	if hdr.Size > e.opts.MaxBytes-e.stats.Bytes {
		return fmt.Errorf("%d bytes after %d of at most %d: %w", hdr.Size, e.stats.Bytes, e.opts.MaxBytes, ErrBudget)
	}
	pfd, base, err := e.root.parentDir(name, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	fd := -1
	err = createAt(pfd, base, name, "create", func() error {
		var err error
		fd, err = unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		return err
	}
	werr := e.writeFile(fd, tr, hdr, name)
	if cerr := unix.Close(fd); werr == nil && cerr != nil {
		werr = &os.PathError{Op: "close", Path: name, Err: cerr}
	}
	if werr != nil {
		return werr
	}
	return e.utimesAt(pfd, base, name, hdr.AccessTime, hdr.ModTime)
}

// writeFile copies the content and sets owner, mode (after chown, which
// clears set-id bits) and xattrs (after chown and write, which clear
// security.capability).
func (e *extractor) writeFile(fd int, tr io.Reader, hdr *tar.Header, name string) error {
	if err := e.copyContent(fdWriter(fd), tr); err != nil {
		return err
	}
	if !e.opts.IgnoreOwnership {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return &os.PathError{Op: "chown", Path: name, Err: err}
		}
	}
	if err := unix.Fchmod(fd, perm(hdr)); err != nil {
		return &os.PathError{Op: "chmod", Path: name, Err: err}
	}
	return fsetXattrs(fd, e.xattrs(hdr))
}

// copyContent streams one entry's content with a pooled buffer, counting it
// against the budget and checking for cancellation between chunks.
func (e *extractor) copyContent(w io.Writer, r io.Reader) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		if err := e.ctx.Err(); err != nil {
			return err
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			if int64(n) > e.opts.MaxBytes-e.stats.Bytes {
				return fmt.Errorf("content over %d bytes: %w", e.opts.MaxBytes, ErrBudget)
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			e.stats.Bytes += int64(n)
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

func (e *extractor) symlink(hdr *tar.Header, name string) error {
	pfd, base, err := e.root.parentDir(name, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	// The target is data: written verbatim, never resolved here.
	err = createAt(pfd, base, name, "symlink", func() error { return unix.Symlinkat(hdr.Linkname, pfd, base) })
	if err != nil {
		return err
	}
	if err := e.chownAt(pfd, base, name, hdr); err != nil {
		return err
	}
	return e.utimesAt(pfd, base, name, hdr.AccessTime, hdr.ModTime)
}

// hardlink links name to an existing entry resolved inside the root; the
// link target's last component is not followed (a link to a symlink links
// the symlink). The target's metadata is left as its own entry set it.
func (e *extractor) hardlink(hdr *tar.Header, name string) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hardlink target: %w", err)
	}
	if target == "" {
		return fmt.Errorf("hardlink to the root %q: %w", hdr.Linkname, ErrUnsafePath)
	}
	tfd, tbase, err := e.root.parentDir(target, false)
	if err != nil {
		return err
	}
	defer unix.Close(tfd)
	var tst unix.Stat_t
	if err := unix.Fstatat(tfd, tbase, &tst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "lstat hardlink target", Path: target, Err: err}
	}
	if tst.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("hardlink to directory %q: %w", target, ErrUnsupported)
	}
	pfd, base, err := e.root.parentDir(name, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Dev == tst.Dev && st.Ino == tst.Ino {
		return nil // already this file
	}
	return createAt(pfd, base, name, "link", func() error { return unix.Linkat(tfd, tbase, pfd, base, 0) })
}

func (e *extractor) device(hdr *tar.Header, name string) error {
	var typ uint32
	switch hdr.Typeflag {
	case tar.TypeChar:
		typ = unix.S_IFCHR
	case tar.TypeBlock:
		typ = unix.S_IFBLK
	default:
		typ = unix.S_IFIFO
	}
	if hdr.Devmajor < 0 || hdr.Devminor < 0 || hdr.Devmajor > 1<<32-1 || hdr.Devminor > 1<<32-1 {
		return fmt.Errorf("device %d:%d: %w", hdr.Devmajor, hdr.Devminor, ErrUnsupported)
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	pfd, base, err := e.root.parentDir(name, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	err = createAt(pfd, base, name, "mknod", func() error { return unix.Mknodat(pfd, base, typ|perm(hdr), int(dev)) })
	if err != nil {
		return err
	}
	if err := e.chownAt(pfd, base, name, hdr); err != nil {
		return err
	}
	if err := chmodAt(pfd, base, perm(hdr)); err != nil {
		return &os.PathError{Op: "chmod", Path: name, Err: err}
	}
	if err := setXattrsAt(pfd, base, e.xattrs(hdr)); err != nil {
		return err
	}
	return e.utimesAt(pfd, base, name, hdr.AccessTime, hdr.ModTime)
}

// whiteout hides dir/hidden: deleted in WhiteoutApply mode, replaced by a
// 0:0 character device in WhiteoutOverlay mode.
func (e *extractor) whiteout(dir, hidden string) error {
	name := joinName(dir, hidden)
	if e.opts.Whiteouts == WhiteoutOverlay {
		pfd, err := e.root.mkdirAll(dir)
		if err != nil {
			return &os.PathError{Op: "resolve", Path: "/" + dir, Err: err}
		}
		defer unix.Close(pfd)
		return createAt(pfd, hidden, name, "mknod whiteout", func() error {
			return unix.Mknodat(pfd, hidden, unix.S_IFCHR, 0)
		})
	}
	pfd, err := e.root.openDir(dir)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return nil // nothing there to hide
	}
	if err != nil {
		return &os.PathError{Op: "resolve", Path: "/" + dir, Err: err}
	}
	defer unix.Close(pfd)
	if err := removeAt(pfd, hidden); err != nil {
		return &os.PathError{Op: "remove", Path: name, Err: err}
	}
	return nil
}

// opaque marks dir as hiding lower content: with WhiteoutOverlay by the
// trusted.overlay.opaque xattr; with WhiteoutApply by deleting what is in dir
// except what this stream itself wrote (the marker may follow entries of its
// own layer).
func (e *extractor) opaque(dir string) error {
	if e.opts.Whiteouts == WhiteoutOverlay {
		fd, err := e.root.mkdirAll(dir)
		if err != nil {
			return &os.PathError{Op: "resolve", Path: "/" + dir, Err: err}
		}
		defer unix.Close(fd)
		dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: "/" + dir, Err: err}
		}
		defer unix.Close(dfd)
		return fsetXattrs(dfd, []xattr{{name: overlayOpaqueXattr, value: "y"}})
	}
	fd, err := e.root.openDir(dir)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "resolve", Path: "/" + dir, Err: err}
	}
	defer unix.Close(fd)
	if dir != "" {
		e.layer.add(dir)
	}
	return e.prune(fd, dir)
}

// prune removes everything below the directory fd (named rel) that this
// stream did not write, descending into directories that it did write or
// that hold what it wrote.
func (e *extractor) prune(fd int, rel string) error {
	dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: "/" + rel, Err: err}
	}
	f := os.NewFile(uintptr(dfd), rel)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		child := joinName(rel, n)
		if !e.layer.has(child) {
			if err := removeAt(dfd, n); err != nil {
				return &os.PathError{Op: "remove", Path: child, Err: err}
			}
			continue
		}
		cfd, err := unix.Openat(dfd, n, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.ENOTDIR || err == unix.ELOOP {
			continue // a file or symlink of this layer
		}
		if err != nil {
			return &os.PathError{Op: "open", Path: child, Err: err}
		}
		err = e.prune(cfd, child)
		unix.Close(cfd)
		if err != nil {
			return err
		}
	}
	return nil
}

// finishDirs applies deferred directory modes and times, deepest first (so
// a parent made read-only or unsearchable does not hide its children),
// skipping directories that later entries removed or replaced.
func (e *extractor) finishDirs() error {
	sort.SliceStable(e.dirs, func(i, j int) bool {
		return strings.Count(e.dirs[i].name, "/") > strings.Count(e.dirs[j].name, "/")
	})
	for _, d := range e.dirs {
		if d.name == "" {
			if err := unix.Fchmod(e.root.fd, d.mode); err != nil {
				return &os.PathError{Op: "chmod", Path: "/", Err: err}
			}
			if err := e.utimesAt(e.root.fd, ".", "/", d.atime, d.mtime); err != nil {
				return err
			}
			continue
		}
		if err := e.finishDir(d); err != nil {
			return err
		}
	}
	return nil
}

func (e *extractor) finishDir(d dirMeta) error {
	pfd, base, err := e.root.parentDir(d.name, false)
	if err != nil {
		var perr *os.PathError
		if errors.As(err, &perr) && (perr.Err == unix.ENOENT || perr.Err == unix.ENOTDIR) {
			return nil
		}
		return err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	if err := chmodAt(pfd, base, d.mode); err != nil {
		return &os.PathError{Op: "chmod", Path: d.name, Err: err}
	}
	return e.utimesAt(pfd, base, d.name, d.atime, d.mtime)
}
