package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func writeTar(ctx context.Context, w io.Writer, rootPath, p string, mode resolveMode) error {
	root, err := openRoot(rootPath, mode)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	defer root.close()
	clean := strings.TrimPrefix(path.Clean("/"+p), "/")
	follow := clean == "" || strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.")
	var pfd int
	var base, name string
	if follow {
		pfd, err = root.openDir(clean)
		if err != nil {
			err = &os.PathError{Op: "resolve", Path: "/" + clean, Err: err}
		}
		base, name = ".", path.Base("/"+clean)
		if clean == "" {
			name = "."
		}
	} else {
		pfd, base, err = root.parentDir(clean, false)
		name = base
	}
	if err != nil {
		return fmt.Errorf("archive: write tar of %s: %w", p, err)
	}
	defer unix.Close(pfd)
	tw := tar.NewWriter(w)
	tb := &tarBuilder{ctx: ctx, tw: tw, links: map[[2]uint64]string{}}
	if err := tb.node(pfd, base, name); err != nil {
		return fmt.Errorf("archive: write tar of %s: %w", p, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("archive: write tar of %s: %w", p, err)
	}
	return nil
}

// tarBuilder writes nodes found by fd-relative lookups with O_NOFOLLOW, so a
// symlink below the requested path is archived as a symlink and never read
// through.
type tarBuilder struct {
	ctx   context.Context
	tw    *tar.Writer
	links map[[2]uint64]string // (dev, inode) of multiply linked files: first name
}

func statHeader(st *unix.Stat_t, name string) *tar.Header {
	return &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(int64(st.Mtim.Sec), 0),
	}
}

// node archives pfd/base under the tar name name.
func (b *tarBuilder) node(pfd int, base, name string) error {
	if err := b.ctx.Err(); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "lstat", Path: name, Err: err}
	}
	typ := st.Mode & unix.S_IFMT
	switch typ {
	case unix.S_IFDIR:
		return b.dir(pfd, base, name)
	case unix.S_IFREG:
		return b.file(pfd, base, name)
	case unix.S_IFSOCK:
		return nil // tar cannot represent sockets
	}
	hdr := statHeader(&st, name)
	if b.hardlink(&st, hdr) {
		return b.tw.WriteHeader(hdr)
	}
	switch typ {
	case unix.S_IFLNK:
		target, err := readlinkAt(pfd, base)
		if err != nil {
			return &os.PathError{Op: "readlink", Path: name, Err: err}
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if typ == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(uint64(st.Rdev))), int64(unix.Minor(uint64(st.Rdev)))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return fmt.Errorf("%s: file type %#o: %w", name, typ, ErrUnsupported)
	}
	return b.tw.WriteHeader(hdr)
}

// hardlink turns hdr into a link to the first name of a multiply linked
// inode already archived and reports whether it did.
func (b *tarBuilder) hardlink(st *unix.Stat_t, hdr *tar.Header) bool {
	if st.Nlink <= 1 {
		return false
	}
	key := [2]uint64{uint64(st.Dev), uint64(st.Ino)}
	if first, ok := b.links[key]; ok {
		hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeLink, first, 0
		return true
	}
	b.links[key] = hdr.Name
	return false
}

// openSame opens pfd/base with flags (always O_NOFOLLOW) and checks that it is
// still the inode lstat saw and of the expected type.
func openSame(pfd int, base, name string, flags int, typ uint32) (*os.File, *unix.Stat_t, error) {
	fd, err := unix.Openat(pfd, base, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	f := os.NewFile(uintptr(fd), name)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, nil, &os.PathError{Op: "fstat", Path: name, Err: err}
	}
	if st.Mode&unix.S_IFMT != typ {
		f.Close()
		return nil, nil, fmt.Errorf("%s: changed while archiving: %w", name, ErrUnsupported)
	}
	return f, &st, nil
}

func (b *tarBuilder) dir(pfd int, base, name string) error {
	f, st, err := openSame(pfd, base, name, unix.O_RDONLY|unix.O_DIRECTORY, unix.S_IFDIR)
	if err != nil {
		return err
	}
	defer f.Close()
	hdr := statHeader(st, name+"/")
	hdr.Typeflag = tar.TypeDir
	hdr.PAXRecords = listXattrs(int(f.Fd()))
	if err := b.tw.WriteHeader(hdr); err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, n := range names {
		if err := b.node(int(f.Fd()), n, name+"/"+n); err != nil {
			return err
		}
	}
	return nil
}

func (b *tarBuilder) file(pfd int, base, name string) error {
	f, st, err := openSame(pfd, base, name, unix.O_RDONLY|unix.O_NONBLOCK, unix.S_IFREG)
	if err != nil {
		return err
	}
	defer f.Close()
	hdr := statHeader(st, name)
	if b.hardlink(st, hdr) {
		return b.tw.WriteHeader(hdr)
	}
	hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
	hdr.PAXRecords = listXattrs(int(f.Fd()))
	if err := b.tw.WriteHeader(hdr); err != nil {
		return err
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	n, err := io.CopyBuffer(b.tw, io.LimitReader(f, st.Size), *bp)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if n != st.Size {
		return fmt.Errorf("%s: shrank from %d to %d bytes while archiving: %w", name, st.Size, n, io.ErrUnexpectedEOF)
	}
	return nil
}

// listXattrs returns the exportable extended attributes of fd as PAX
// records, or nil (also when the filesystem has none or refuses to list).
func listXattrs(fd int) map[string]string {
	sz, err := unix.Flistxattr(fd, nil)
	if err != nil || sz <= 0 {
		return nil
	}
	buf := make([]byte, sz)
	sz, err = unix.Flistxattr(fd, buf)
	if err != nil {
		return nil
	}
	var recs map[string]string
	for _, n := range bytes.Split(buf[:sz], []byte{0}) {
		name := string(n)
		if name == "" || !exportXattr(name) {
			continue
		}
		vsz, err := unix.Fgetxattr(fd, name, nil)
		if err != nil {
			continue
		}
		val := make([]byte, vsz)
		vsz, err = unix.Fgetxattr(fd, name, val)
		if err != nil {
			continue
		}
		if recs == nil {
			recs = map[string]string{}
		}
		recs[paxXattrPrefix+name] = string(val[:vsz])
	}
	return recs
}
