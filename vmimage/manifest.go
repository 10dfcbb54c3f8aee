package vmimage

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/berth-dev/berth/vmimage/debpkg"
)

// ManifestName is the manifest's file name in an image directory.
const ManifestName = "manifest.json"

// ManifestVersion is the schema version written by this package.
const ManifestVersion = 1

// Sentinel errors.
var (
	// ErrVerify: an artifact is missing or its hash or size differs.
	ErrVerify = errors.New("vmimage: verification failed")
	// ErrInvalid: bad options or a malformed manifest.
	ErrInvalid = errors.New("vmimage: invalid")
)

// Artifact kinds.
const (
	KindKernel    = "kernel"         // what to boot: vmlinux (amd64, PVH ELF) or Image (arm64)
	KindKernelAlt = "kernel-bzimage" // amd64 fallback for machines without PVH (-M pc)
	KindInitramfs = "initramfs"
)

// Artifact is one file of the image directory.
type Artifact struct {
	Kind   string `json:"kind"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Agent describes the berth-agent build inside the initramfs.
type Agent struct {
	SHA256    string `json:"sha256"`
	Size      int64  `json:"size"`
	Commit    string `json:"commit,omitempty"`    // git describe of the source tree, when built from it
	GoVersion string `json:"goVersion,omitempty"` // from the binary's build info
	Source    string `json:"source"`              // "built" or the --agent path
}

// Boot holds hints for the VMM driver.
type Boot struct {
	Machine    string `json:"machine"`              // QEMU machine: microvm (amd64), virt (arm64)
	Kernel     string `json:"kernel"`               // artifact name to pass as -kernel
	KernelAlt  string `json:"kernelAlt,omitempty"`  // for -M pc when PVH is unavailable
	PVHEntry   string `json:"pvhEntry,omitempty"`   // hex physical PVH entry (amd64)
	Console    string `json:"console"`              // ttyS0 / ttyAMA0
	Initramfs  string `json:"initramfs"`            // artifact name; append the instance cpio (instance.Archive)
	Cmdline    string `json:"cmdline"`              // suggested base command line (no secrets, no host-specific values)
	TSCNote    string `json:"tscNote,omitempty"`    // reminder: add tsc_early_khz=<host kHz> under TCG
	Compressed string `json:"compressed,omitempty"` // initramfs compression
}

// Manifest describes an image directory.
type Manifest struct {
	Version       int                 `json:"version"`
	Arch          string              `json:"arch"` // GOARCH
	KernelRelease string              `json:"kernelRelease"`
	Artifacts     map[string]Artifact `json:"artifacts"` // by file name
	Packages      []debpkg.Package    `json:"packages"`
	Modules       []string            `json:"modules"` // load order, paths under /lib/modules/<release>
	// ModuleStages lists the modules of Modules that load after the boot stage, by stage (LoadStages);
	// older images have none.
	ModuleStages map[string][]string `json:"moduleStages,omitempty"`
	Builtin      []string            `json:"builtinModules,omitempty"`
	Missing      []string            `json:"missingOptionalModules,omitempty"`
	Agent        Agent               `json:"agent"`
	Boot         Boot                `json:"boot"`
}

// ReadManifest reads dir/manifest.json.
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", dir, err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest %s: %v", ErrInvalid, dir, err)
	}
	if m.Version != ManifestVersion || len(m.Artifacts) == 0 {
		return nil, fmt.Errorf("%w: manifest %s: version %d, %d artifacts", ErrInvalid, dir, m.Version, len(m.Artifacts))
	}
	return &m, nil
}

// WriteManifest writes m to dir/manifest.json (atomically).
func WriteManifest(dir string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, ManifestName), append(b, '\n'), 0o644)
}

// Verify re-hashes every artifact of the image in dir against its manifest.
func Verify(dir string) (*Manifest, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(m.Artifacts))
	for n := range m.Artifacts {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		a := m.Artifacts[n]
		if filepath.Base(n) != n {
			errs = append(errs, fmt.Errorf("%w: artifact name %q", ErrInvalid, n))
			continue
		}
		p := filepath.Join(dir, n)
		st, err := os.Stat(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %v", ErrVerify, n, err))
			continue
		}
		if st.Size() != a.Size {
			errs = append(errs, fmt.Errorf("%w: %s: size %d, manifest says %d", ErrVerify, n, st.Size(), a.Size))
			continue
		}
		got, err := debpkg.HashFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %v", ErrVerify, err))
			continue
		}
		if got != a.SHA256 {
			errs = append(errs, fmt.Errorf("%w: %s: sha256 %s, manifest says %s", ErrVerify, n, got, a.SHA256))
		}
	}
	return m, errors.Join(errs...)
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
