package hcs

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/berth-dev/berth/guestagent/runtime/container"
)

// The types below mirror the fields of HCS's schema v1 container document and process config
// (hcsshim.ContainerConfig, hcsshim.ProcessConfig) and HNS's NAT policy (hcsshim.NatPolicy) that berth sets.
// The JSON names are HCS's, so the golden files show exactly what HCS receives; the Windows backend copies
// them field by field into hcsshim's types.

// Layer is one read-only image layer of a container.
type Layer struct {
	// ID is the layer's GUID (hcsshim.NameToGuid of its folder name).
	ID string `json:"ID"`
	// Path is the layer folder.
	Path string `json:"Path"`
}

// MappedDirectory shares a host directory into the container (-v).
type MappedDirectory struct {
	HostPath      string `json:"HostPath"`
	ContainerPath string `json:"ContainerPath"`
	ReadOnly      bool   `json:"ReadOnly"`
	// CreateInUtilityVM is false: Hyper-V isolation maps directories through the utility VM itself.
	CreateInUtilityVM bool `json:"CreateInUtilityVM"`
}

// HvRuntime configures Hyper-V isolation.
type HvRuntime struct {
	// ImagePath is the utility VM image: the base layer's UtilityVM folder.
	ImagePath string `json:"ImagePath,omitempty"`
}

// ContainerDocument is the document HCS creates a Windows container from (schema v1).
type ContainerDocument struct {
	SystemType                  string            `json:"SystemType"` // always "Container"
	Name                        string            `json:"Name"`       // the container ID
	Owner                       string            `json:"Owner,omitempty"`
	VolumePath                  string            `json:"VolumePath,omitempty"` // the mounted scratch volume (\\?\Volume{…}\)
	IgnoreFlushesDuringBoot     bool              `json:"IgnoreFlushesDuringBoot,omitempty"`
	LayerFolderPath             string            `json:"LayerFolderPath,omitempty"` // the scratch layer folder
	Layers                      []Layer           `json:"Layers"`                    // topmost first, base last
	ProcessorCount              uint32            `json:"ProcessorCount,omitempty"`
	ProcessorWeight             uint64            `json:"ProcessorWeight,omitempty"`
	ProcessorMaximum            int64             `json:"ProcessorMaximum,omitempty"`
	MemoryMaximumInMB           int64             `json:"MemoryMaximumInMB,omitempty"`
	HostName                    string            `json:"HostName,omitempty"`
	MappedDirectories           []MappedDirectory `json:"MappedDirectories,omitempty"`
	HvPartition                 bool              `json:"HvPartition"`
	EndpointList                []string          `json:"EndpointList,omitempty"`
	HvRuntime                   *HvRuntime        `json:"HvRuntime,omitempty"`
	AllowUnqualifiedDNSQuery    bool              `json:"AllowUnqualifiedDNSQuery,omitempty"`
	TerminateOnLastHandleClosed bool              `json:"TerminateOnLastHandleClosed,omitempty"`
}

// ProcessConfig is how HCS starts a process in a container (schema v1).
type ProcessConfig struct {
	CommandLine      string            `json:"CommandLine"`
	User             string            `json:"User,omitempty"`
	WorkingDirectory string            `json:"WorkingDirectory,omitempty"`
	Environment      map[string]string `json:"Environment,omitempty"`
	EmulateConsole   bool              `json:"EmulateConsole,omitempty"`
	CreateStdInPipe  bool              `json:"CreateStdInPipe,omitempty"`
	CreateStdOutPipe bool              `json:"CreateStdOutPipe,omitempty"`
	CreateStdErrPipe bool              `json:"CreateStdErrPipe,omitempty"`
	ConsoleSize      [2]uint           `json:"ConsoleSize,omitzero"`
}

// NatPolicy publishes one container port on the host through HNS's NAT network.
type NatPolicy struct {
	Type         string `json:"Type"` // always "NAT"
	Protocol     string `json:"Protocol"`
	InternalPort uint16 `json:"InternalPort"`
	ExternalPort uint16 `json:"ExternalPort"`
}

// Isolation modes.
const (
	// IsolationProcess shares the host's kernel (Windows Server's default, like dockerd's).
	IsolationProcess = "process"
	// IsolationHyperV runs the container in a utility VM.
	IsolationHyperV = "hyperv"
)

// Owner is the Owner of every compute system berth creates.
const Owner = "berth"

// ImageConfig is the part of a Windows image's config a container inherits.
type ImageConfig struct {
	Env        []string
	Entrypoint []string
	Cmd        []string
	WorkingDir string
	User       string
	// ArgsEscaped: the image's Cmd (or Entrypoint) is a single, already escaped command line (Windows
	// images built from a shell-form CMD).
	ArgsEscaped bool
}

// Storage is where the backend put the container's layers.
type Storage struct {
	// ScratchFolder is the container's writable layer folder.
	ScratchFolder string
	// VolumePath is the scratch layer's mounted volume.
	VolumePath string
	// Layers are the image's layers, topmost first.
	Layers []Layer
}

// PlanInput is everything Plan needs about one container.
type PlanInput struct {
	// ID is the container ID.
	ID string
	// Options are the create options the engine decoded from Docker's request.
	Options container.CreateOptions
	// Image is the image's config.
	Image ImageConfig
	// Storage are the container's layers.
	Storage Storage
	// Isolation is IsolationProcess (default when empty) or IsolationHyperV.
	Isolation string
	// HostCPUs is the host's logical CPU count (for --cpus under process isolation).
	HostCPUs int
	// EndpointID is the HNS endpoint, "" for --network none.
	EndpointID string
	// AllowUNC allows UNC bind sources (\\server\share\dir).
	AllowUNC bool
}

// Plan is what Plan computes: the container document and its first process.
type Plan struct {
	Document ContainerDocument `json:"Document"`
	Process  ProcessConfig     `json:"Process"`
}

// MakePlan translates a Docker create request (as berth's engine decoded it) into an HCS container
// document and the config of the container's first process. It does no I/O.
func MakePlan(in PlanInput) (*Plan, error) {
	hc := in.Options.HostConfig
	switch {
	case in.ID == "":
		return nil, fmt.Errorf("%w: no container ID", ErrInvalidConfig)
	case hc.Privileged:
		return nil, fmt.Errorf("%w: --privileged is not supported for Windows containers", ErrInvalidConfig)
	case len(hc.CapAdd) > 0 || len(hc.CapDrop) > 0:
		return nil, fmt.Errorf("%w: capabilities are not supported for Windows containers", ErrInvalidConfig)
	case hc.ReadonlyRootfs:
		return nil, fmt.Errorf("%w: --read-only is not supported for Windows containers", ErrInvalidConfig)
	case len(in.Storage.Layers) == 0:
		return nil, fmt.Errorf("%w: image has no layers", ErrInvalidConfig)
	}
	if _, err := NetworkMode(hc.NetworkMode); err != nil {
		return nil, err
	}
	iso := in.Isolation
	if iso == "" {
		iso = IsolationProcess
	}
	if iso != IsolationProcess && iso != IsolationHyperV {
		return nil, fmt.Errorf("%w: isolation %q (want %s or %s)", ErrInvalidConfig, iso, IsolationProcess, IsolationHyperV)
	}
	doc := ContainerDocument{
		SystemType:                  "Container",
		Name:                        in.ID,
		Owner:                       Owner,
		VolumePath:                  in.Storage.VolumePath,
		IgnoreFlushesDuringBoot:     true,
		LayerFolderPath:             in.Storage.ScratchFolder,
		Layers:                      slices.Clone(in.Storage.Layers),
		HostName:                    hostname(in),
		AllowUnqualifiedDNSQuery:    true,
		TerminateOnLastHandleClosed: true,
	}
	if in.EndpointID != "" {
		doc.EndpointList = []string{in.EndpointID}
	}
	if iso == IsolationHyperV {
		doc.HvPartition = true
		// The utility VM image ships in the base layer.
		doc.HvRuntime = &HvRuntime{ImagePath: in.Storage.Layers[len(in.Storage.Layers)-1].Path + `\UtilityVM`}
		// Under Hyper-V isolation, processes are confined by the VM's size.
		if hc.NanoCPUs > 0 {
			doc.ProcessorCount = uint32((hc.NanoCPUs + 1e9 - 1) / 1e9)
		}
	} else if hc.NanoCPUs > 0 {
		cpus := max(in.HostCPUs, 1)
		doc.ProcessorMaximum = min(max(hc.NanoCPUs*10000/(int64(cpus)*1e9), 1), 10000)
	}
	if hc.CPUShares > 0 {
		doc.ProcessorWeight = uint64(min(max(hc.CPUShares, 1), 10000))
	}
	if hc.Memory > 0 {
		doc.MemoryMaximumInMB = (hc.Memory + 1<<20 - 1) >> 20
	}
	for _, spec := range hc.Binds {
		b, err := ParseBind(spec, in.AllowUNC)
		if err != nil {
			return nil, err
		}
		for _, m := range doc.MappedDirectories {
			if strings.EqualFold(m.ContainerPath, b.Destination) {
				return nil, fmt.Errorf("%w: duplicate mount point %s", ErrInvalidMount, b.Destination)
			}
		}
		doc.MappedDirectories = append(doc.MappedDirectories, MappedDirectory{HostPath: b.Source, ContainerPath: b.Destination, ReadOnly: b.ReadOnly})
	}
	proc, err := processConfig(in.Options.Config, in.Image)
	if err != nil {
		return nil, err
	}
	return &Plan{Document: doc, Process: proc}, nil
}

func hostname(in PlanInput) string {
	if h := in.Options.Config.Hostname; h != "" {
		return h
	}
	if len(in.ID) > 12 {
		return in.ID[:12]
	}
	return in.ID
}

// processConfig is the container's first process: entrypoint and cmd (the request's over the image's),
// environment (the request's over the image's), working directory and user.
func processConfig(c container.Config, img ImageConfig) (ProcessConfig, error) {
	entrypoint, cmd := img.Entrypoint, img.Cmd
	if c.Entrypoint != nil {
		entrypoint, cmd = c.Entrypoint, nil
	}
	if len(c.Cmd) > 0 {
		cmd = c.Cmd
	}
	argv := append(slices.Clone(entrypoint), cmd...)
	if len(argv) == 0 {
		return ProcessConfig{}, fmt.Errorf("%w: no command specified", ErrInvalidConfig)
	}
	// An image built from a shell-form CMD or ENTRYPOINT carries its first element as one command line,
	// already escaped: it is used as it is, and only the arguments after it are escaped.
	line := CommandLine(argv)
	if img.ArgsEscaped && c.Entrypoint == nil && (len(img.Entrypoint) > 0 || len(c.Cmd) == 0) {
		line = argv[0]
		if len(argv) > 1 {
			line += " " + CommandLine(argv[1:])
		}
	}
	env := map[string]string{}
	for _, kv := range append(slices.Clone(img.Env), c.Env...) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return ProcessConfig{}, fmt.Errorf("%w: environment entry %q is not KEY=VALUE", ErrInvalidConfig, kv)
		}
		// Windows environment names are case-insensitive: a later spelling replaces an earlier one.
		for old := range maps.Keys(env) {
			if strings.EqualFold(old, k) {
				delete(env, old)
			}
		}
		env[k] = v
	}
	wd := c.WorkingDir
	if wd == "" {
		wd = img.WorkingDir
	}
	if wd != "" {
		clean, err := CleanWindowsPath(wd, false)
		if err != nil {
			return ProcessConfig{}, fmt.Errorf("%w: working directory: %w", ErrInvalidConfig, err)
		}
		wd = clean
	}
	user := c.User
	if user == "" {
		user = img.User
	}
	p := ProcessConfig{
		CommandLine:      line,
		User:             user,
		WorkingDirectory: wd,
		Environment:      env,
		EmulateConsole:   c.Tty,
		CreateStdInPipe:  c.OpenStdin,
		CreateStdOutPipe: true,
		CreateStdErrPipe: !c.Tty, // a console merges both streams
	}
	if len(env) == 0 {
		p.Environment = nil
	}
	return p, nil
}

// CommandLine joins argv into a Windows command line that CommandLineToArgvW (and the C runtime) split
// back into argv: arguments with spaces, tabs or quotes are quoted; backslashes are doubled only where
// they precede a quote.
func CommandLine(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(escapeArg(a))
	}
	return b.String()
}

func escapeArg(a string) string {
	if a == "" {
		return `""`
	}
	if !strings.ContainsAny(a, " \t\n\v\"") {
		return a
	}
	var b strings.Builder
	b.WriteByte('"')
	slashes := 0
	for i := 0; i < len(a); i++ {
		c := a[i]
		switch c {
		case '\\':
			slashes++
			b.WriteByte(c)
			continue
		case '"':
			// Double the backslashes before a quote, then escape the quote.
			b.WriteString(strings.Repeat(`\`, slashes+1))
		}
		slashes = 0
		b.WriteByte(c)
	}
	// Backslashes before the closing quote are doubled too.
	b.WriteString(strings.Repeat(`\`, slashes))
	b.WriteByte('"')
	return b.String()
}

// execProcessConfig is the config of a process docker exec starts in a running container: opts' command
// line (each argument quoted as CommandLineToArgvW splits it back), the container's environment (image's,
// then the container's) with opts' over it, opts' user and working directory over the container's, a
// console with Tty, and pipes for the streams opts attaches.
func execProcessConfig(c container.Config, img ImageConfig, opts container.ExecOptions) (ProcessConfig, error) {
	if len(opts.Cmd) == 0 {
		return ProcessConfig{}, fmt.Errorf("%w: no exec command specified", ErrInvalidConfig)
	}
	cfg := container.Config{
		Entrypoint: []string{},
		Cmd:        opts.Cmd,
		Env:        append(slices.Clone(c.Env), opts.Env...),
		User:       c.User,
		WorkingDir: c.WorkingDir,
		Tty:        opts.Tty,
	}
	if opts.User != "" {
		cfg.User = opts.User
	}
	if opts.WorkingDir != "" {
		cfg.WorkingDir = opts.WorkingDir
	}
	p, err := processConfig(cfg, ImageConfig{Env: img.Env, WorkingDir: img.WorkingDir, User: img.User})
	if err != nil {
		return ProcessConfig{}, err
	}
	p.CreateStdInPipe = opts.Stdin != nil
	p.CreateStdOutPipe = opts.Stdout != nil || (opts.Tty && opts.Stderr != nil)
	p.CreateStdErrPipe = opts.Stderr != nil && !opts.Tty
	return p, nil
}
