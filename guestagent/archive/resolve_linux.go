package archive

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// openat2Missing is set once openat2 reported ENOSYS; later lookups go
// straight to the component walk.
var openat2Missing atomic.Bool

// maxSymlinks bounds the symlinks one lookup follows (the kernel's limit).
const maxSymlinks = 40

// rootFS is an extraction root held open as a directory fd. Every path below
// it is resolved relative to fd, as if fd were "/", so no lookup can leave it.
type rootFS struct {
	fd   int
	path string
	mode resolveMode
}

func openRoot(path string, mode resolveMode) (*rootFS, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open root", Path: path, Err: err}
	}
	return &rootFS{fd: fd, path: path, mode: mode}, nil
}

func (r *rootFS) close() { unix.Close(r.fd) }

// openDir resolves the clean relative name as a directory inside the root,
// following symlinks (including the last component) as if the root were "/",
// and returns an O_PATH fd of it. Errors are bare errnos.
func (r *rootFS) openDir(clean string) (int, error) {
	if r.mode == resolveAuto && !openat2Missing.Load() {
		fd, err := r.openat2Dir(clean)
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.ENOSYS):
			openat2Missing.Store(true)
		case errors.Is(err, unix.EPERM):
			// A seccomp filter may refuse openat2 with EPERM; walk instead.
		default:
			return -1, err
		}
	}
	return r.walkDir(clean)
}

func (r *rootFS) openat2Dir(clean string) (int, error) {
	p := clean
	if p == "" {
		p = "."
	}
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for range 16 {
		fd, err := unix.Openat2(r.fd, p, &how)
		// EAGAIN: a concurrent rename raced with a ".." lookup; retry.
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		return fd, err
	}
	return -1, unix.EAGAIN
}

// walkDir is the openat2-less lookup: one O_PATH|O_NOFOLLOW openat per
// component, symlinks read and spliced into the remaining components, ".."
// popping a stack of directory fds that never goes below the root.
func (r *rootFS) walkDir(clean string) (int, error) {
	stack := []int{r.fd}
	defer func() {
		for _, fd := range stack[1:] {
			unix.Close(fd)
		}
	}()
	var rest []string
	if clean != "" {
		rest = strings.Split(clean, "/")
	}
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				unix.Close(stack[len(stack)-1])
				stack = stack[:len(stack)-1]
			}
			continue
		}
		fd, err := unix.Openat(stack[len(stack)-1], c, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			stack = append(stack, fd)
		case unix.S_IFLNK:
			target, err := readlinkAt(fd, "")
			unix.Close(fd)
			if err != nil {
				return -1, err
			}
			if links++; links > maxSymlinks {
				return -1, unix.ELOOP
			}
			if target == "" {
				return -1, unix.ENOENT
			}
			if strings.HasPrefix(target, "/") {
				for _, fd := range stack[1:] {
					unix.Close(fd)
				}
				stack = stack[:1]
			}
			rest = append(strings.Split(target, "/"), rest...)
		default:
			unix.Close(fd)
			return -1, unix.ENOTDIR
		}
	}
	if len(stack) == 1 {
		return unix.Openat(r.fd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	fd := stack[len(stack)-1]
	stack = stack[:len(stack)-1]
	return fd, nil
}

// mkdirAll is openDir that creates missing directories (mode 0755, before
// umask) with mkdirat relative to their resolved parent. It never creates
// anything through a dangling symlink: such a component fails with EEXIST.
func (r *rootFS) mkdirAll(clean string) (int, error) {
	fd, err := r.openDir(clean)
	if err != unix.ENOENT {
		return fd, err
	}
	parent, err := r.openDir("")
	if err != nil {
		return -1, err
	}
	comps := strings.Split(clean, "/")
	for i, c := range comps {
		prefix := strings.Join(comps[:i+1], "/")
		fd, err := r.openDir(prefix)
		if err == unix.ENOENT {
			if err = unix.Mkdirat(parent, c, defaultImplicitMode); err == nil || err == unix.EEXIST {
				fd, err = r.openDir(prefix)
			}
		}
		unix.Close(parent)
		if err != nil {
			return -1, err
		}
		parent = fd
	}
	return parent, nil
}

// parentDir returns an O_PATH fd of clean's parent inside the root (created
// when create is set) and clean's last component.
func (r *rootFS) parentDir(clean string, create bool) (int, string, error) {
	dir, base := splitName(clean)
	var fd int
	var err error
	if create {
		fd, err = r.mkdirAll(dir)
	} else {
		fd, err = r.openDir(dir)
	}
	if err != nil {
		return -1, "", &os.PathError{Op: "resolve", Path: "/" + dir, Err: err}
	}
	return fd, base, nil
}

// readlinkAt reads the symlink name in dirfd (or dirfd itself with name "").
func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// procFdPath names fd through /proc, to operate on an O_PATH fd's inode with
// calls that have no fd or AT_SYMLINK_NOFOLLOW form.
func procFdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// chmodAt sets the mode of dirfd/name without following a symlink there
// (fchmodat2 AT_SYMLINK_NOFOLLOW, or chmod of an O_PATH fd through /proc on
// kernels before 6.6). Symlinks are left alone.
func chmodAt(dirfd int, name string, mode uint32) error {
	err := unix.Fchmodat(dirfd, name, mode, unix.AT_SYMLINK_NOFOLLOW)
	if err != unix.EOPNOTSUPP && err != unix.ENOSYS {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil
	}
	return unix.Chmod(procFdPath(fd), mode)
}

// setXattrsAt sets attributes on dirfd/name without following a symlink
// there; symlinks themselves get none (Linux allows only trusted/security
// attributes on them and there is no fd-relative lsetxattr before 6.13).
func setXattrsAt(dirfd int, name string, xs []xattr) error {
	if len(xs) == 0 {
		return nil
	}
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		return nil
	case unix.S_IFDIR:
		// A readable directory fd needs no /proc.
		if dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
			defer unix.Close(dfd)
			return fsetXattrs(dfd, xs)
		}
	}
	p := procFdPath(fd)
	for _, x := range xs {
		if err := unix.Setxattr(p, x.name, []byte(x.value), 0); err != nil {
			return &os.PathError{Op: "setxattr " + x.name, Path: name, Err: err}
		}
	}
	return nil
}

func fsetXattrs(fd int, xs []xattr) error {
	for _, x := range xs {
		if err := unix.Fsetxattr(fd, x.name, []byte(x.value), 0); err != nil {
			return fmt.Errorf("setxattr %s: %w", x.name, err)
		}
	}
	return nil
}

// removeAt removes dirfd/name whatever it is, a directory with its contents,
// never following symlinks. A missing name is not an error.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	switch err {
	case nil, unix.ENOENT:
		return nil
	case unix.EISDIR, unix.EPERM:
	default:
		return err
	}
	for range 3 {
		if cerr := removeChildren(dirfd, name); cerr != nil {
			if cerr == unix.ENOTDIR {
				return err
			}
			return cerr
		}
		err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.ENOTEMPTY && err != unix.EEXIST {
			return err
		}
	}
	return err
}

// removeChildren empties the directory dirfd/name (making it writable for
// its owner first, so an unprivileged caller can remove read-only trees).
func removeChildren(dirfd int, name string) error {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(dirfd, name, flags, 0)
	if err == unix.EACCES {
		if cerr := chmodAt(dirfd, name, 0o700); cerr != nil {
			return err
		}
		fd, err = unix.Openat(dirfd, name, flags, 0)
	}
	if err != nil {
		if err == unix.ELOOP {
			return unix.ENOTDIR
		}
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&0o700 != 0o700 {
		if err := unix.Fchmod(fd, (st.Mode&0o7777)|0o700); err != nil && err != unix.EPERM {
			return err
		}
	}
	for {
		names, rerr := f.Readdirnames(1024)
		for _, n := range names {
			if err := removeAt(fd, n); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}
