package container

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/berth-dev/berth/guestagent/network"
)

// Sentinel errors; returned errors wrap exactly one of them (or another
// package's sentinel, e.g. image.ErrNotFound, next to ErrNotFound).
var (
	ErrNotFound   = errors.New("container: not found")
	ErrConflict   = errors.New("container: conflict")
	ErrInvalid    = errors.New("container: invalid parameter")
	ErrNotRunning = errors.New("container: not running")
	// ErrNotModified reports a start of a running or a stop of a stopped
	// container (dockerd answers 304).
	ErrNotModified = errors.New("container: not modified")
	// ErrAmbiguous reports an id prefix that matches several containers; it
	// wraps ErrInvalid.
	ErrAmbiguous = fmt.Errorf("%w: ambiguous id prefix", ErrInvalid)
	// ErrNotSupported reports an operation this OS cannot do.
	ErrNotSupported = errors.New("container: not supported on this system")
)

// Status values of State.Status, Docker's.
const (
	StatusCreated    = "created"
	StatusRunning    = "running"
	StatusPaused     = "paused"
	StatusRestarting = "restarting"
	StatusExited     = "exited"
	StatusDead       = "dead"
	StatusRemoving   = "removing"
)

// Container is a container's record, persisted as container.json.
type Container struct {
	ID        string    `json:"id"`        // 64 hex digits
	Name      string    `json:"name"`      // with Docker's leading "/"
	Image     string    `json:"image"`     // image ID (sha256:…)
	ImageName string    `json:"imageName"` // the reference it was created from
	Created   time.Time `json:"created"`
	// Path and Args are the process's argv (entrypoint and cmd resolved).
	Path       string     `json:"path"`
	Args       []string   `json:"args"`
	Config     Config     `json:"config"`
	HostConfig HostConfig `json:"hostConfig"`
	State      State      `json:"state"`
	// LogPath is the json-file log; HostnamePath, HostsPath and
	// ResolvConfPath the files bind-mounted over the container's /etc ones.
	LogPath        string `json:"logPath"`
	HostnamePath   string `json:"hostnamePath"`
	HostsPath      string `json:"hostsPath"`
	ResolvConfPath string `json:"resolvConfPath"`
	// Rootfs is the mounted root filesystem (merged overlay dir).
	Rootfs string `json:"rootfs"`
	// NetNSPath is the container's own persistent network namespace (a
	// bind mount made by network.NewNetNS), "" when it has none (host
	// network, another container's namespace, or no network manager).
	NetNSPath string `json:"netnsPath,omitempty"`
	// Networks are the networks the container is connected to, by network
	// name: what was asked for and, once attached, the endpoint.
	Networks map[string]*NetworkAttachment `json:"networks,omitempty"`
}

// EndpointConfig are a container's settings on one network (docker run
// --network-alias, --ip; docker network connect --alias, --ip).
type EndpointConfig struct {
	Aliases []string `json:"aliases,omitempty"`
	// IPv4Address asks for a fixed address; zero allocates one.
	IPv4Address netip.Addr `json:"ipv4Address,omitzero"`
}

// NetworkAttachment is a container's membership of one network.
type NetworkAttachment struct {
	Config EndpointConfig `json:"config"`
	// Endpoint is the attachment as the network manager made it (address,
	// gateway, MAC, interface); zero until attached.
	Endpoint network.Endpoint `json:"endpoint"`
}

// Config is the container's Docker config (the image-independent part).
type Config struct {
	Image       string            `json:"image"`              // reference as given
	Hostname    string            `json:"hostname,omitempty"` // default: the first 12 hex digits of the ID
	User        string            `json:"user,omitempty"`     // name|uid[:group|gid]
	Env         []string          `json:"env,omitempty"`      // KEY=VALUE over the image's
	Cmd         []string          `json:"cmd,omitempty"`      // overrides the image's
	Entrypoint  []string          `json:"entrypoint"`         // overrides the image's when non-nil; empty clears it (so no omitempty)
	WorkingDir  string            `json:"workingDir,omitempty"`
	Tty         bool              `json:"tty,omitempty"`
	OpenStdin   bool              `json:"openStdin,omitempty"`
	StdinOnce   bool              `json:"stdinOnce,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	StopSignal  string            `json:"stopSignal,omitempty"`  // default: the image's, then SIGTERM
	StopTimeout *int              `json:"stopTimeout,omitempty"` // seconds; default 10
}

// PortBinding is one host side of a published port (kept as data; the
// network layer acts on it).
type PortBinding struct {
	HostIP   string `json:"hostIp,omitempty"`
	HostPort string `json:"hostPort,omitempty"`
}

// RestartPolicy is Docker's restart policy.
type RestartPolicy struct {
	Name              string `json:"name,omitempty"` // "", "no", "always", "unless-stopped", "on-failure"
	MaximumRetryCount int    `json:"maximumRetryCount,omitempty"`
}

// HostConfig is the subset of Docker's host config berth implements.
type HostConfig struct {
	Binds          []string                 `json:"binds,omitempty"`        // "/src:/dst[:ro|rw][,propagation]"
	PortBindings   map[string][]PortBinding `json:"portBindings,omitempty"` // "80/tcp" → bindings
	Memory         int64                    `json:"memory,omitempty"`
	MemorySwap     int64                    `json:"memorySwap,omitempty"`
	NanoCPUs       int64                    `json:"nanoCpus,omitempty"`
	CPUShares      int64                    `json:"cpuShares,omitempty"`
	PidsLimit      *int64                   `json:"pidsLimit,omitempty"`
	ShmSize        int64                    `json:"shmSize,omitempty"`
	AutoRemove     bool                     `json:"autoRemove,omitempty"`
	RestartPolicy  RestartPolicy            `json:"restartPolicy"`
	NetworkMode    string                   `json:"networkMode,omitempty"` // "", "default", "bridge", "none", "host", a network name, "container:<id>"
	Privileged     bool                     `json:"privileged,omitempty"`
	ReadonlyRootfs bool                     `json:"readonlyRootfs,omitempty"`
	CapAdd         []string                 `json:"capAdd,omitempty"`
	CapDrop        []string                 `json:"capDrop,omitempty"`
}

// State is the container's run state.
type State struct {
	Status       string    `json:"status"`
	Running      bool      `json:"running"`
	Paused       bool      `json:"paused"`
	Restarting   bool      `json:"restarting"`
	OOMKilled    bool      `json:"oomKilled"`
	Dead         bool      `json:"dead"`
	Pid          int       `json:"pid"`
	ExitCode     int       `json:"exitCode"`
	Error        string    `json:"error"`
	StartedAt    time.Time `json:"startedAt"`
	FinishedAt   time.Time `json:"finishedAt"`
	RestartCount int       `json:"restartCount"`
}

// CreateOptions are the arguments of Create.
type CreateOptions struct {
	Name       string // "" generates one; with or without the leading "/"
	Config     Config
	HostConfig HostConfig
	// Networks are the endpoint settings by network name (Docker's
	// NetworkingConfig.EndpointsConfig). The network of
	// HostConfig.NetworkMode is always joined (first); further entries
	// connect the container to more networks.
	Networks map[string]EndpointConfig
}

// ExecOptions are the arguments of Exec.
type ExecOptions struct {
	Cmd        []string
	Env        []string
	User       string // default: the container's
	WorkingDir string // default: the container's
	Tty        bool
	// The streams to attach; nil ones are not attached.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// AttachOptions are the arguments of Attach; nil streams are not attached.
// Stdin is forwarded only when the container has OpenStdin.
type AttachOptions struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// LogsOptions select log entries (Docker's /logs parameters).
type LogsOptions struct {
	Stdout, Stderr bool // streams to include; both false means both
	Tail           int  // last N entries; < 0 means all
	Since, Until   time.Time
	Follow         bool // keep reading until the container stops
}

// ListOptions are the arguments of List.
type ListOptions struct {
	All bool // include stopped containers
	// Filters are Docker's: id, name, label (key or key=value), status, exited.
	Filters map[string][]string
}

// Wait conditions.
const (
	WaitNotRunning = "not-running"
	WaitNextExit   = "next-exit"
	WaitRemoved    = "removed"
)

// WaitResult is what Wait delivers.
type WaitResult struct {
	ExitCode int
	Error    string // the container's State.Error
	Err      error  // the wait itself failed (ctx ended)
}

// Event is a Docker-style container event.
type Event struct {
	Action     string // create, start, die, kill, stop, restart, destroy, oom, exec_start, exec_die, attach, detach
	ID         string // container id
	Time       time.Time
	Attributes map[string]string // name, image, exitCode, signal, execID… and the labels
}
