// Package specgen turns an image config plus a user's run options into an OCI
// runtime spec with Docker's semantics: entrypoint/cmd and env merging, user
// and group resolution from the container's /etc/passwd and /etc/group,
// Docker's default capabilities, masked and read-only paths, default mounts and
// devices, rlimits and resource limits. It is pure: no syscalls but reading the
// rootfs's passwd/group files through an fs.FS.
package specgen

import (
	"errors"
	"io/fs"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrInvalid reports options that cannot form a valid container (no command,
// unknown user name, bad bind spec, …). Errors wrap it.
var ErrInvalid = errors.New("specgen: invalid container options")

// Bind is a bind mount from the agent's filesystem into the container
// (`-v /src:/dst[:ro]`).
type Bind struct {
	Source      string
	Destination string
	ReadOnly    bool
	// Propagation is "", "rprivate", "private", "rshared", "shared", "rslave" or "slave".
	Propagation string
}

// Options are the per-container choices, in Docker's terms.
type Options struct {
	// Image is the image's config (Env, Entrypoint, Cmd, User, WorkingDir, StopSignal …).
	Image ocispec.ImageConfig
	// Entrypoint overrides the image's when non-nil; an empty non-nil slice
	// clears it (`--entrypoint ""`). Docker then drops the image's Cmd too
	// unless Cmd is given.
	Entrypoint []string
	// Cmd overrides the image's Cmd when non-empty.
	Cmd []string
	// Env entries KEY=VALUE, appended over the image's (later wins); a bare KEY
	// is dropped. PATH defaults to Docker's default when neither sets it; HOME
	// defaults to the user's home from /etc/passwd (or /); HOSTNAME is set; TERM=xterm with Tty.
	Env []string
	// User as in `-u`: name|uid[:group|gid]; empty means the image's User, then root.
	User string
	// WorkingDir overrides the image's; default "/".
	WorkingDir string
	// Hostname of the container; default: first 12 hex digits of ID.
	Hostname string
	// ID is the container id (64 hex digits).
	ID string
	// Tty allocates a terminal for the process.
	Tty bool
	// RootfsPath is spec.Root.Path (absolute, or relative to the bundle).
	RootfsPath string
	// ReadonlyRootfs mounts the root read-only.
	ReadonlyRootfs bool
	// Binds are `-v` host binds.
	Binds []Bind
	// Memory limit in bytes (0: none). MemorySwap as Docker's (-1 unlimited, 0 = 2×Memory).
	Memory, MemorySwap int64
	// NanoCPUs is `--cpus` × 1e9 (0: none), turned into cpu.max quota/period.
	NanoCPUs int64
	// CPUShares is `--cpu-shares` (0: default).
	CPUShares int64
	// PidsLimit (nil or <= 0: none).
	PidsLimit *int64
	// CapAdd and CapDrop adjust Docker's default set ("ALL" allowed, names with or without CAP_).
	CapAdd, CapDrop []string
	// Privileged grants all capabilities, all devices, no masked/read-only paths.
	Privileged bool
	// NetworkNamespace: "" (new namespace), "host" (none: share the agent's), or a path to join.
	NetworkNamespace string
	// ShmSize in bytes for /dev/shm (0: Docker's 64 MiB).
	ShmSize int64
	// CgroupsPath is spec.Linux.CgroupsPath.
	CgroupsPath string
	// Rootfs gives access to the container's root filesystem (for /etc/passwd and /etc/group); may be nil.
	Rootfs fs.FS
	// ExtraMounts are appended last (e.g. /etc/hosts, /etc/resolv.conf, /etc/hostname binds).
	// An extra mount at the same destination as a Bind is dropped: the user's bind wins.
	ExtraMounts []specs.Mount
	// AllowNewPrivileges clears the process's no_new_privileges flag. berth sets
	// NoNewPrivileges by default (Docker does only with
	// `--security-opt no-new-privileges`); set this to get Docker's default.
	AllowNewPrivileges bool
	// Devices are device nodes to create in the container. Docker fills this
	// with every host device when Privileged; the caller gathers them (this
	// package makes no syscalls). Otherwise the runtime's default set (null,
	// zero, full, random, urandom, tty, ptmx) suffices and this stays empty.
	Devices []specs.LinuxDevice
}

// Generate builds the OCI runtime spec for opts.
func Generate(opts Options) (*specs.Spec, error) {
	return generate(opts)
}

// ResolveUser resolves a Docker user string (name|uid[:group|gid]) against the
// container's /etc/passwd and /etc/group in rootfs (either may be missing),
// including supplementary groups, with Docker's rules: numeric ids need no
// entry, a name that is not found is an error.
//
// The returned string is the user's home directory from /etc/passwd ("/" when
// there is no entry). AdditionalGids lists the primary gid first, then the gids
// of the groups that name the user as a member, as Docker does; an explicit
// group ("user:group") sets the gid and adds no supplementary groups.
func ResolveUser(rootfs fs.FS, user string) (specs.User, string, error) {
	return resolveUser(rootfs, user)
}

// DefaultCapabilities is Docker's default capability set.
func DefaultCapabilities() []string {
	return append([]string(nil), defaultCaps...)
}

// ProcessFor builds the process of an exec into a container created from
// base: user resolved against rootfs, env merged over base's, cwd, tty.
//
// An empty user keeps base's user. Capabilities start from base's bounding
// set: a root process gets it as effective and permitted too, another user
// only as bounding (what execve would leave it). Rlimits, NoNewPrivileges,
// the AppArmor profile, SELinux label and OOM score are copied from base.
// When user changes and base's HOME was the default of base's user, HOME
// becomes the new user's home.
func ProcessFor(base *specs.Spec, rootfs fs.FS, cmd []string, env []string, user, workdir string, tty bool) (*specs.Process, error) {
	return processFor(base, rootfs, cmd, env, user, workdir, tty)
}
