package lima

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Name is the driver's name.
const Name = "lima"

// Paths in the guest.
const (
	// EngineSocket is the engine's unix socket in the guest.
	EngineSocket = "/run/berth/docker.sock"
	// ShareMountPoint is where the guest sees the driver's read-only share (agent binary, keys).
	ShareMountPoint = "/mnt/berth-share"
	// GuestUser is the guest account berth's transport logs in as (transport.DefaultUser).
	GuestUser = "berth"
)

// AgentEnv names the agent binary when Options.AgentPath is empty.
const AgentEnv = "BERTH_AGENT"

// Defaults for zero Options fields.
const (
	DefaultDiskGiB      = 100
	DefaultStartTimeout = 10 * time.Minute
	// MinimumLimaVersion is the oldest limactl whose lima.yaml berth writes (vmOpts.vz.rosetta).
	MinimumLimaVersion = "2.0.0"
)

// Errors of this package.
var (
	// ErrInvalidOptions: Options that cannot describe a VM (Rosetta without vz, an unknown VM type, …).
	ErrInvalidOptions = errors.New("lima: invalid options")
	// ErrLimactl: limactl failed; the error carries its argv and the tail of its stderr.
	ErrLimactl = errors.New("lima: limactl failed")
	// ErrAgentBinary: the berth-agent binary is missing or is not a Linux build for the guest's architecture.
	ErrAgentBinary = errors.New("lima: unusable berth-agent binary")
	// ErrListOutput: `limactl list --json` printed something that does not decode.
	ErrListOutput = errors.New("lima: unreadable limactl list output")
)

// Options configure the driver; the zero value is usable (see each field's default).
type Options struct {
	// Limactl is the limactl binary; empty means "limactl" looked up in PATH.
	Limactl string
	// LimaHome is LIMA_HOME for every limactl call; empty means <instance>/lima, so berth's VMs stay apart
	// from the user's own Lima instances.
	LimaHome string
	// VMType is "vz" or "qemu"; empty means vz on macOS, qemu elsewhere.
	VMType string
	// Arch is the guest architecture in Lima's spelling ("aarch64", "x86_64"); empty means the host's.
	Arch string
	// Rosetta enables Rosetta 2 for x86_64 binaries in an aarch64 vz guest (binfmt registered).
	Rosetta bool
	// DiskGiB is the VM disk size; 0 means DefaultDiskGiB.
	DiskGiB int
	// Images are the guest cloud images; empty means DefaultImages.
	Images []Image
	// HomeDir is the host home directory shared at the same path; empty means os.UserHomeDir().
	HomeDir string
	// Shares are more host directories shared writable at the same path (configured roots).
	Shares []string
	// AgentPath is the berth-agent binary for linux/<guest arch>; empty means $BERTH_AGENT, then the first
	// linux/<goarch> executable among linux-<goarch>/berth-agent beside the running executable,
	// ../libexec/berth-agent (Homebrew), berth-agent beside it (release archive) and
	// bin/linux-<goarch>/berth-agent (symlinks of the executable are followed too).
	AgentPath string
	// AgentArgs are extra arguments for `berth-agent serve` (e.g. "--debug").
	AgentArgs []string
	// StartTimeout bounds `limactl start` (Lima's --timeout); 0 means DefaultStartTimeout.
	StartTimeout time.Duration
	// Logger receives the driver's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultImages are Debian 12 "genericcloud" images (what Lima's debian-12 template boots).
var DefaultImages = []Image{
	{Location: "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-arm64.qcow2", Arch: ArchAArch64},
	{Location: "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2", Arch: ArchX8664},
}

// LimaArch returns Lima's name for a GOARCH ("arm64" → "aarch64"); "" if Lima has none berth supports.
func LimaArch(goarch string) string {
	switch goarch {
	case "amd64":
		return ArchX8664
	case "arm64":
		return ArchAArch64
	}
	return ""
}

// GoArch is the inverse of LimaArch.
func GoArch(limaArch string) string {
	switch limaArch {
	case ArchX8664:
		return "amd64"
	case ArchAArch64:
		return "arm64"
	}
	return ""
}

// withDefaults fills zero fields for a host running goos/goarch; it does no I/O.
func (o Options) withDefaults(goos, goarch string) Options {
	if o.Limactl == "" {
		o.Limactl = "limactl"
	}
	if o.VMType == "" {
		o.VMType = VMTypeQEMU
		if goos == "darwin" {
			o.VMType = VMTypeVZ
		}
	}
	if o.Arch == "" {
		o.Arch = LimaArch(goarch)
	}
	if o.DiskGiB == 0 {
		o.DiskGiB = DefaultDiskGiB
	}
	if len(o.Images) == 0 {
		o.Images = DefaultImages
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	return o
}

// validate checks defaulted Options.
func (o Options) validate() error {
	switch {
	case o.VMType != VMTypeVZ && o.VMType != VMTypeQEMU:
		return fmt.Errorf("%w: vm type %q (want %q or %q)", ErrInvalidOptions, o.VMType, VMTypeVZ, VMTypeQEMU)
	case GoArch(o.Arch) == "":
		return fmt.Errorf("%w: guest arch %q (want %q or %q)", ErrInvalidOptions, o.Arch, ArchAArch64, ArchX8664)
	case o.Rosetta && (o.VMType != VMTypeVZ || o.Arch != ArchAArch64):
		return fmt.Errorf("%w: Rosetta needs vm type vz and an aarch64 guest (have %s, %s)", ErrInvalidOptions, o.VMType, o.Arch)
	case o.DiskGiB < 0:
		return fmt.Errorf("%w: disk %d GiB", ErrInvalidOptions, o.DiskGiB)
	case o.HomeDir != "" && !filepath.IsAbs(o.HomeDir):
		return fmt.Errorf("%w: home directory %q is not absolute", ErrInvalidOptions, o.HomeDir)
	case !slices.ContainsFunc(o.Images, func(im Image) bool { return im.Arch == o.Arch }):
		return fmt.Errorf("%w: no image for arch %s", ErrInvalidOptions, o.Arch)
	}
	for _, s := range o.Shares {
		if !filepath.IsAbs(s) || strings.ContainsAny(s, "\n\r") {
			return fmt.Errorf("%w: share %q is not an absolute path", ErrInvalidOptions, s)
		}
	}
	for _, a := range o.AgentArgs {
		if a == "" || strings.ContainsAny(a, " \t\n\r\"'\\%$;&|<>`") {
			return fmt.Errorf("%w: agent argument %q has characters berth does not quote", ErrInvalidOptions, a)
		}
	}
	return nil
}
