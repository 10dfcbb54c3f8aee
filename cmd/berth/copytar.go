package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// writeCopyTar writes the local file or directory src as a tar whose entry
// names start with name (default: src's base name), as `docker cp` uploads
// it. Symlinks are archived as links, never followed.
func writeCopyTar(w io.Writer, src, name string) error {
	src = filepath.Clean(src)
	if name == "" {
		name = filepath.Base(src)
	}
	if name == "." || name == ".." || name == string(filepath.Separator) {
		name = "."
	}
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		entry := path.Join(name, filepath.ToSlash(rel))
		var link string
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return fmt.Errorf("archive %s: %w", p, err)
		}
		hdr.Name = entry
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// extractCopy writes the tar r, downloaded from a container path whose base
// name is srcName, to the local dst with docker cp's rules: into dst when it
// is an existing directory, else as dst itself (dst's parent must exist).
// Every file operation goes through an os.Root, so entry names and links in
// the tar cannot reach outside the destination.
func extractCopy(r io.Reader, srcName, dst string) error {
	dst = filepath.Clean(dst)
	rootDir, rename := dst, ""
	st, err := os.Stat(dst)
	switch {
	case err == nil && st.IsDir():
	case err == nil || errors.Is(err, fs.ErrNotExist):
		rootDir, rename = filepath.Dir(dst), filepath.Base(dst)
		if pst, perr := os.Stat(rootDir); perr != nil || !pst.IsDir() {
			return fmt.Errorf("destination directory %q must exist", rootDir)
		}
	default:
		return err
	}
	root, err := os.OpenRoot(rootDir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		name, ok := copyEntryName(hdr.Name, srcName, rename)
		if !ok {
			continue
		}
		var target string
		if hdr.Typeflag == tar.TypeLink {
			if target, ok = copyEntryName(hdr.Linkname, srcName, rename); !ok {
				return fmt.Errorf("hard link %s: bad target %q", name, hdr.Linkname)
			}
		}
		if err := extractEntry(root, tr, hdr, name, target, rootDir); err != nil {
			return err
		}
	}
}

// copyEntryName cleans an entry name and renames its first component from
// srcName to rename; ok is false for the archive's own root entry.
func copyEntryName(name, srcName, rename string) (string, bool) {
	name = path.Clean("/" + name)[1:]
	if name == "" {
		return "", false
	}
	if rename != "" {
		first, rest, _ := strings.Cut(name, "/")
		if first == srcName || srcName == "" {
			name = path.Join(rename, rest)
		}
	}
	return filepath.FromSlash(name), true
}

func extractEntry(root *os.Root, r io.Reader, hdr *tar.Header, name, linkTarget, rootDir string) error {
	mode := fs.FileMode(hdr.Mode).Perm()
	if dir := filepath.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", filepath.Join(rootDir, dir), err)
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := root.Mkdir(name, mode|0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", filepath.Join(rootDir, name), err)
		}
	case tar.TypeReg:
		_ = root.Remove(name) // replace a link or file rather than write through it
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return fmt.Errorf("create %s: %w", filepath.Join(rootDir, name), err)
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", filepath.Join(rootDir, name), err)
		}
	case tar.TypeSymlink:
		_ = root.Remove(name)
		if err := root.Symlink(hdr.Linkname, name); err != nil {
			return fmt.Errorf("symlink %s: %w", filepath.Join(rootDir, name), err)
		}
		return nil
	case tar.TypeLink:
		_ = root.Remove(name)
		if err := root.Link(linkTarget, name); err != nil {
			return fmt.Errorf("hard link %s: %w", filepath.Join(rootDir, name), err)
		}
		return nil
	default:
		// Devices and fifos are not recreated on the host.
		return nil
	}
	if err := root.Chmod(name, mode); err != nil {
		return err
	}
	return root.Chtimes(name, hdr.AccessTime, hdr.ModTime)
}
