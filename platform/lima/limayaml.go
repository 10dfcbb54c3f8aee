package lima

// The types below mirror the subset of Lima v2.2.0's pkg/limatype (LimaYAML, Instance) that berth writes and
// reads. Field names and YAML/JSON keys are Lima's; fields berth does not use are absent (Lima fills them with
// its defaults). Pointers mark fields where "unset" and the zero value differ for Lima.

// Lima architecture names (limatype.Arch).
const (
	ArchX8664   = "x86_64"
	ArchAArch64 = "aarch64"
)

// Lima VM types (limatype.VMType).
const (
	VMTypeVZ   = "vz"
	VMTypeQEMU = "qemu"
)

// Lima mount types (limatype.MountType).
const (
	MountTypeVirtiofs = "virtiofs"
	MountType9P       = "9p"
)

// Lima instance states as `limactl list --json` reports them (limatype.Status).
const (
	LimaStatusRunning       = "Running"
	LimaStatusStopped       = "Stopped"
	LimaStatusBroken        = "Broken"
	LimaStatusInstalling    = "Installing"
	LimaStatusUninitialized = "Uninitialized"
)

// LimaYAML is the instance template berth writes (limatype.LimaYAML, subset).
type LimaYAML struct {
	// MinimumLimaVersion refuses older limactl binaries that would misread the file.
	MinimumLimaVersion string `yaml:"minimumLimaVersion,omitempty" json:"minimumLimaVersion,omitempty"`
	// VMType is "vz" (macOS Virtualization.framework) or "qemu".
	VMType string `yaml:"vmType" json:"vmType"`
	// VMOpts holds per-VM-type options; berth sets only vz's Rosetta.
	VMOpts *VMOpts `yaml:"vmOpts,omitempty" json:"vmOpts,omitempty"`
	// OS is the guest OS ("Linux").
	OS string `yaml:"os" json:"os"`
	// Arch is the guest architecture ("aarch64", "x86_64").
	Arch string `yaml:"arch" json:"arch"`
	// Images are the cloud images to boot from; Lima takes the first matching Arch.
	Images []Image `yaml:"images" json:"images"`
	// CPUs is the number of vCPUs; nil leaves Lima's default.
	CPUs *int `yaml:"cpus,omitempty" json:"cpus,omitempty"`
	// Memory is the RAM size in go-units form ("4096MiB"); nil leaves Lima's default.
	Memory *string `yaml:"memory,omitempty" json:"memory,omitempty"`
	// Disk is the size of the VM's disk in go-units form ("100GiB"); nil leaves Lima's default.
	Disk *string `yaml:"disk,omitempty" json:"disk,omitempty"`
	// Mounts are the host directories shared with the guest.
	Mounts []Mount `yaml:"mounts" json:"mounts"`
	// MountType is "virtiofs" (vz) or "9p" (qemu).
	MountType string `yaml:"mountType" json:"mountType"`
	// SSH configures how Lima (and berth) reach the guest's sshd.
	SSH SSH `yaml:"ssh" json:"ssh"`
	// Provision are the scripts Lima runs in the guest on every boot.
	Provision []Provision `yaml:"provision" json:"provision"`
	// Containerd: berth disables Lima's bundled containerd.
	Containerd Containerd `yaml:"containerd" json:"containerd"`
	// Probes must pass before `limactl start` returns.
	Probes []Probe `yaml:"probes,omitempty" json:"probes,omitempty"`
	// PortForwards: berth ignores every guest port (its hostagent forwards published ports itself).
	PortForwards []PortForward `yaml:"portForwards" json:"portForwards"`
	// Message is shown by `limactl start` once the instance is up.
	Message string `yaml:"message,omitempty" json:"message,omitempty"`
}

// VMOpts are per-VM-type options (limatype.VMOpts, subset).
type VMOpts struct {
	// VZ are the options of the vz VM type.
	VZ *VZOpts `yaml:"vz,omitempty" json:"vz,omitempty"`
}

// VZOpts are the vz options (limatype.VZOpts, subset).
type VZOpts struct {
	// Rosetta runs x86_64 Linux binaries in an aarch64 guest.
	Rosetta Rosetta `yaml:"rosetta" json:"rosetta"`
}

// Rosetta configures Rosetta 2 in a vz guest (limatype.Rosetta).
type Rosetta struct {
	// Enabled shares Rosetta into the guest.
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// BinFmt registers it with binfmt_misc for x86_64 ELF binaries.
	BinFmt *bool `yaml:"binfmt,omitempty" json:"binfmt,omitempty"`
}

// Image is one boot image (limatype.Image with its inline File).
type Image struct {
	// Location is a URL or a local path.
	Location string `yaml:"location" json:"location"`
	// Arch is the image's architecture.
	Arch string `yaml:"arch" json:"arch"`
	// Digest ("sha512:…") is checked after download when set.
	Digest string `yaml:"digest,omitempty" json:"digest,omitempty"`
	// Kernel boots the VM directly (images without a boot loader); nil boots the image's own.
	Kernel *Kernel `yaml:"kernel,omitempty" json:"kernel,omitempty"`
	// Initrd goes with Kernel.
	Initrd *File `yaml:"initrd,omitempty" json:"initrd,omitempty"`
}

// Kernel is a kernel for direct boot (limatype.Kernel).
type Kernel struct {
	// Location is a URL or a local path.
	Location string `yaml:"location" json:"location"`
	// Cmdline is the kernel command line.
	Cmdline string `yaml:"cmdline,omitempty" json:"cmdline,omitempty"`
}

// File is a downloadable file (limatype.File, subset).
type File struct {
	// Location is a URL or a local path.
	Location string `yaml:"location" json:"location"`
}

// Mount is one shared host directory (limatype.Mount, subset).
type Mount struct {
	// Location is the host directory.
	Location string `yaml:"location" json:"location"`
	// MountPoint is where the guest sees it; nil means the same path as Location.
	MountPoint *string `yaml:"mountPoint,omitempty" json:"mountPoint,omitempty"`
	// Writable lets the guest write.
	Writable *bool `yaml:"writable,omitempty" json:"writable,omitempty"`
}

// SSH configures the guest's SSH endpoint on the host (limatype.SSH, subset).
type SSH struct {
	// LocalPort is the host port forwarded to the guest's sshd; 0 picks a free one.
	LocalPort *int `yaml:"localPort,omitempty" json:"localPort,omitempty"`
	// LoadDotSSHPubKeys copies ~/.ssh/*.pub into the guest; berth does not.
	LoadDotSSHPubKeys *bool `yaml:"loadDotSSHPubKeys,omitempty" json:"loadDotSSHPubKeys,omitempty"`
	// ForwardAgent forwards the user's ssh-agent for `limactl shell`; berth does not.
	ForwardAgent *bool `yaml:"forwardAgent,omitempty" json:"forwardAgent,omitempty"`
}

// Provision is one provisioning step (limatype.Provision, subset).
type Provision struct {
	// Mode is "system" (run as root) or "user".
	Mode string `yaml:"mode" json:"mode"`
	// Script is the shell script; Lima expands Go-template actions in it, so berth's scripts contain none.
	Script string `yaml:"script" json:"script"`
}

// Containerd configures Lima's bundled containerd (limatype.Containerd, subset).
type Containerd struct {
	// System runs a rootful containerd.
	System *bool `yaml:"system" json:"system"`
	// User runs a rootless containerd.
	User *bool `yaml:"user" json:"user"`
}

// Probe is a readiness check run by Lima as the guest user (limatype.Probe, subset).
type Probe struct {
	// Mode is "readiness".
	Mode string `yaml:"mode" json:"mode"`
	// Description is shown while Lima waits.
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Script must start with "#!" and exit 0 once ready.
	Script string `yaml:"script" json:"script"`
	// Hint is shown if the probe keeps failing.
	Hint string `yaml:"hint,omitempty" json:"hint,omitempty"`
}

// PortForward is one port forwarding rule (limatype.PortForward, subset).
type PortForward struct {
	// GuestIP is the guest address the rule matches; 0.0.0.0 with GuestIPMustBeZero false matches any.
	GuestIP string `yaml:"guestIP,omitempty" json:"guestIP,omitempty"`
	// GuestIPMustBeZero restricts a 0.0.0.0 rule to sockets bound to 0.0.0.0 itself.
	GuestIPMustBeZero *bool `yaml:"guestIPMustBeZero,omitempty" json:"guestIPMustBeZero,omitempty"`
	// GuestPortRange is the range of guest ports the rule matches.
	GuestPortRange [2]int `yaml:"guestPortRange,omitempty" json:"guestPortRange,omitempty"`
	// Proto is "tcp", "udp" or "any".
	Proto string `yaml:"proto,omitempty" json:"proto,omitempty"`
	// Ignore drops matching ports instead of forwarding them.
	Ignore bool `yaml:"ignore,omitempty" json:"ignore,omitempty"`
}

// ListEntry is one instance as `limactl list --json` prints it (limatype.Instance, subset): one JSON object
// per line.
type ListEntry struct {
	// Name is the Lima instance name ("berth-default").
	Name string `json:"name"`
	// Status is "Running", "Stopped", "Broken", … (the LimaStatus constants).
	Status string `json:"status"`
	// Dir is the instance's directory under LIMA_HOME.
	Dir string `json:"dir"`
	// VMType is "vz" or "qemu".
	VMType string `json:"vmType"`
	// Arch is the guest architecture.
	Arch string `json:"arch"`
	// CPUs, Memory and Disk (bytes) are the VM's resources.
	CPUs   int   `json:"cpus,omitempty"`
	Memory int64 `json:"memory,omitempty"`
	Disk   int64 `json:"disk,omitempty"`
	// Message is Lima's remark on the instance.
	Message string `json:"message,omitempty"`
	// SSHAddress and SSHLocalPort are the host-side address of the guest's sshd.
	SSHAddress   string `json:"sshAddress,omitempty"`
	SSHLocalPort int    `json:"sshLocalPort,omitempty"`
	// HostAgentPID is Lima's hostagent process (it owns the VM); DriverPID the VM process, when separate.
	HostAgentPID int `json:"hostAgentPID,omitempty"`
	DriverPID    int `json:"driverPID,omitempty"`
	// Errors are the problems Lima found with the instance (as strings on the wire).
	Errors []string `json:"errors,omitempty"`
	// LimaVersion is the version of the limactl that created the instance.
	LimaVersion string `json:"limaVersion"`
}
