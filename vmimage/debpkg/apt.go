package debpkg

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultSources is the deb822 sources list the private apt state uses when
// Apt.Sources is empty: Debian 12 main, updates and security.
const DefaultSources = `Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`

// Package is one binary package as the index describes it.
type Package struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Arch     string `json:"arch"`
	Filename string `json:"filename"` // pool path relative to the mirror
	URI      string `json:"uri"`      // full download URI
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"` // hex, from the index; the downloaded file is checked against it
	Depends  string `json:"-"`
}

// Apt runs apt-get/apt-cache against a private state directory for one
// architecture. It never installs anything and never reads or writes the
// host's package lists, dpkg status or architectures.
type Apt struct {
	Arch    string       // Debian architecture: amd64, arm64
	Dir     string       // private state (lists, apt cache, sources, empty status)
	Sources string       // deb822 sources; DefaultSources when empty
	Offline bool         // never run apt-get update if package lists exist
	Logger  *slog.Logger // nil: slog.Default()
}

func (a *Apt) log() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

// options returns the -o flags that point apt at the private state.
func (a *Apt) options() []string {
	d := a.Dir
	return []string{
		"-o", "APT::Architecture=" + a.Arch,
		"-o", "APT::Architectures::=" + a.Arch,
		"-o", "Dir::State=" + filepath.Join(d, "state"),
		"-o", "Dir::State::Lists=" + filepath.Join(d, "lists"),
		"-o", "Dir::State::status=" + filepath.Join(d, "status"),
		"-o", "Dir::Cache=" + filepath.Join(d, "cache"),
		"-o", "Dir::Etc::SourceList=/dev/null",
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(d, "sources.list.d"),
		"-o", "Dir::Etc::Preferences=/dev/null",
		"-o", "Dir::Etc::PreferencesParts=/dev/null",
		"-o", "APT::Sandbox::User=root",
		"-o", "Debug::NoLocking=1",
		"-o", "Acquire::Languages=none",
		"-q",
	}
}

func (a *Apt) prepare() error {
	for _, sub := range []string{"state", "lists/partial", "cache/archives/partial", "sources.list.d"} {
		if err := os.MkdirAll(filepath.Join(a.Dir, sub), 0o755); err != nil {
			return fmt.Errorf("apt state %s: %w", a.Dir, err)
		}
	}
	src := a.Sources
	if src == "" {
		src = DefaultSources
	}
	if err := os.WriteFile(filepath.Join(a.Dir, "sources.list.d", "berth.sources"), []byte(src), 0o644); err != nil {
		return fmt.Errorf("apt sources: %w", err)
	}
	st := filepath.Join(a.Dir, "status")
	if _, err := os.Stat(st); os.IsNotExist(err) {
		if err := os.WriteFile(st, nil, 0o644); err != nil {
			return fmt.Errorf("apt status: %w", err)
		}
	}
	return nil
}

func (a *Apt) run(ctx context.Context, dir, tool string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, tool, append(a.options(), args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func (a *Apt) haveLists() bool {
	m, _ := filepath.Glob(filepath.Join(a.Dir, "lists", "*_Packages*"))
	return len(m) > 0
}

// Update refreshes the private package lists. When it fails but lists from
// an earlier run exist, it logs a warning and keeps them (offline rebuild).
func (a *Apt) Update(ctx context.Context) error {
	if err := a.prepare(); err != nil {
		return err
	}
	if a.Offline && a.haveLists() {
		a.log().Info("apt: offline, using existing package lists", "arch", a.Arch)
		return nil
	}
	start := time.Now()
	if _, err := a.run(ctx, a.Dir, "apt-get", "update"); err != nil {
		if a.haveLists() {
			a.log().Warn("apt-get update failed; using the package lists of an earlier run", "arch", a.Arch, "err", err)
			return nil
		}
		return err
	}
	a.log().Info("apt: package lists updated", "arch", a.Arch, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Show returns the candidate version of package name from the private index.
func (a *Apt) Show(ctx context.Context, name string) (Package, error) {
	out, err := a.run(ctx, a.Dir, "apt-cache", "show", "--no-all-versions", name)
	if err != nil {
		return Package{}, fmt.Errorf("%w: package %s (%s): %v", ErrNotFound, name, a.Arch, err)
	}
	ps, err := ParseParagraphs(bytes.NewReader(out))
	if err != nil || len(ps) == 0 {
		return Package{}, fmt.Errorf("%w: apt-cache show %s: %v", ErrFormat, name, err)
	}
	p := ps[0]
	size, _ := strconv.ParseInt(p["Size"], 10, 64)
	pkg := Package{
		Name: p["Package"], Version: p["Version"], Arch: p["Architecture"], Filename: p["Filename"],
		Size: size, SHA256: strings.ToLower(p["SHA256"]), Depends: p["Depends"],
	}
	if pkg.SHA256 == "" || pkg.Filename == "" {
		return Package{}, fmt.Errorf("%w: index entry of %s lacks SHA256 or Filename", ErrFormat, name)
	}
	uris, err := a.run(ctx, a.Dir, "apt-get", "download", "--print-uris", pkg.Name+"="+pkg.Version)
	if err != nil {
		return Package{}, err
	}
	for _, line := range strings.Split(string(uris), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && strings.EqualFold(f[3], "SHA256:"+pkg.SHA256) {
			pkg.URI = strings.Trim(f[0], "'")
		}
	}
	return pkg, nil
}

// CachePath is where a package with the given SHA256 lives in cacheDir.
func CachePath(cacheDir, sha string) string {
	return filepath.Join(cacheDir, "sha256", sha+".deb")
}

// Fetch returns the path of pkg's .deb in cacheDir, downloading it with
// apt-get download when it is not cached. The file is verified against
// pkg.SHA256 in both cases.
func (a *Apt) Fetch(ctx context.Context, pkg Package, cacheDir string) (string, error) {
	dst := CachePath(cacheDir, pkg.SHA256)
	if err := VerifyFile(dst, pkg.SHA256); err == nil {
		return dst, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("cache %s: %w", cacheDir, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), "dl-")
	if err != nil {
		return "", fmt.Errorf("cache %s: %w", cacheDir, err)
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	if _, err := a.run(ctx, tmp, "apt-get", "download", pkg.Name+"="+pkg.Version); err != nil {
		return "", err
	}
	got, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(got) != 1 {
		return "", fmt.Errorf("%w: apt-get download %s left %d .deb files", ErrNotFound, pkg.Name, len(got))
	}
	if err := VerifyFile(got[0], pkg.SHA256); err != nil {
		return "", err
	}
	if err := os.Rename(got[0], dst); err != nil {
		return "", fmt.Errorf("cache %s: %w", pkg.Name, err)
	}
	a.log().Info("apt: downloaded", "package", pkg.Name, "version", pkg.Version, "arch", pkg.Arch,
		"bytes", pkg.Size, "took", time.Since(start).Round(time.Millisecond))
	return dst, nil
}

// VerifyFile checks that the file at path has the given hex SHA256.
func VerifyFile(path, sha string) error {
	got, err := HashFile(path)
	if err != nil {
		return err
	}
	if got != strings.ToLower(sha) {
		return fmt.Errorf("%w: %s: sha256 %s, want %s", ErrChecksum, path, got, sha)
	}
	return nil
}

// HashFile returns the hex SHA256 of the file at path.
func HashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
