package engine

import (
	"archive/tar"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strconv"

	securejoin "github.com/cyphar/filepath-securejoin"
	ctypes "github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/guestagent/archive"
	"github.com/berth-dev/berth/guestagent/runtime/container"
)

// containerRoot is the directory through which the engine sees a
// container's files: /proc/PID/root while it runs (so its bind mounts are
// visible), the merged rootfs otherwise. Paths below it are always resolved
// inside it, never by the agent's own root.
func containerRoot(c *container.Container) (string, error) {
	if c.State.Running && c.State.Pid > 0 {
		return "/proc/" + strconv.Itoa(c.State.Pid) + "/root", nil
	}
	if c.Rootfs == "" {
		return "", conflictf("container %s has no filesystem mounted", c.ID)
	}
	return c.Rootfs, nil
}

// archivePath reads and checks the "path" parameter.
func archivePath(r *http.Request) (string, error) {
	p := r.URL.Query().Get("path")
	if p == "" {
		return "", invalidf("path parameter is required")
	}
	if !path.IsAbs(p) {
		// dockerd resolves relative paths against the root, as does docker cp.
		p = "/" + p
	}
	return p, nil
}

// statInContainer stats p inside root with symlinks resolved within root,
// except a final symlink, which is reported as itself (as dockerd does).
func statInContainer(c *container.Container, root, p string) (ctypes.PathStat, error) {
	dir, base := path.Split(path.Clean(p))
	parent, err := securejoin.SecureJoin(root, dir)
	if err != nil {
		return ctypes.PathStat{}, fmt.Errorf("resolve %s: %w", p, err)
	}
	full := parent
	if base != "" {
		full = parent + "/" + base
	}
	lstat := os.Lstat
	if base == "" {
		// The container's root itself: /proc/PID/root is a (magic) link to
		// it, which must be followed.
		lstat = os.Stat
	}
	st, err := lstat(full)
	if errors.Is(err, fs.ErrNotExist) {
		return ctypes.PathStat{}, notFoundf("Could not find the file %s in container %s", p, c.Name[min(1, len(c.Name)):])
	}
	if err != nil {
		return ctypes.PathStat{}, fmt.Errorf("stat %s: %w", p, err)
	}
	ps := ctypes.PathStat{Name: st.Name(), Size: st.Size(), Mode: st.Mode(), Mtime: st.ModTime()}
	if base == "" {
		ps.Name = "/"
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		target, err := os.Readlink(full)
		if err == nil {
			ps.LinkTarget = target
		}
	}
	return ps, nil
}

func setStatHeader(w http.ResponseWriter, st ctypes.PathStat) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	w.Header().Set("X-Docker-Container-Path-Stat", base64.StdEncoding.EncodeToString(b))
	return nil
}

func (s *Server) archiveTarget(w http.ResponseWriter, r *http.Request) (*container.Container, string, string, ctypes.PathStat, error) {
	ref := r.PathValue("id")
	c, err := s.containers.Get(ref)
	if err != nil {
		return nil, "", "", ctypes.PathStat{}, s.noSuchContainer(ref, err)
	}
	p, err := archivePath(r)
	if err != nil {
		return nil, "", "", ctypes.PathStat{}, err
	}
	root, err := containerRoot(c)
	if err != nil {
		return nil, "", "", ctypes.PathStat{}, err
	}
	st, err := statInContainer(c, root, p)
	if err != nil {
		return nil, "", "", ctypes.PathStat{}, err
	}
	return c, root, p, st, setStatHeader(w, st)
}

func (s *Server) headContainerArchive(w http.ResponseWriter, r *http.Request) error {
	if _, _, _, _, err := s.archiveTarget(w, r); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) getContainerArchive(w http.ResponseWriter, r *http.Request) error {
	c, root, p, _, err := s.archiveTarget(w, r)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.WriteHeader(http.StatusOK)
	if err := archive.WriteTar(r.Context(), w, root, p); err != nil {
		s.log.Warn("archive download failed mid-stream", "container", c.ID, "path", p, "err", err)
	}
	return nil
}

func (s *Server) putContainerArchive(w http.ResponseWriter, r *http.Request) error {
	c, root, p, st, err := s.archiveTarget(w, r)
	if err != nil {
		return err
	}
	if !st.Mode.IsDir() {
		return invalidf("extraction point is not a directory: %s", p)
	}
	keepOwner, err := boolParam(r, "copyUIDGID")
	if err != nil {
		return err
	}
	// Every entry is re-rooted below p and extracted through the
	// container's root, so neither the names nor a symlink the container
	// placed on the way can lead the write outside it.
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(rebaseTar(pw, r.Body, p, keepOwner)) }()
	_, err = archive.Apply(r.Context(), root, pr, archive.Options{Whiteouts: archive.WhiteoutLiteral})
	pr.CloseWithError(err)
	if err != nil {
		if errors.Is(err, archive.ErrUnsafePath) || errors.Is(err, archive.ErrBudget) || errors.Is(err, archive.ErrUnsupported) {
			return invalidf("copy into container %s: %v", c.ID, err)
		}
		return fmt.Errorf("copy into container %s: %w", c.ID, err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// rebaseTar copies the tar stream in to out with every name (and hard link
// target) placed below dir; without keepOwner the entries belong to root, as
// docker cp makes them.
func rebaseTar(out io.Writer, in io.Reader, dir string, keepOwner bool) error {
	tr := tar.NewReader(in)
	tw := tar.NewWriter(out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return tw.Close()
		}
		if err != nil {
			return invalidf("read upload: %v", err)
		}
		h.Name = path.Join(dir, path.Clean("/"+h.Name))
		if h.Typeflag == tar.TypeLink {
			h.Linkname = path.Join(dir, path.Clean("/"+h.Linkname))
		}
		if !keepOwner {
			h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}
