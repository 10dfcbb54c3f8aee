// Package instance is berth's instance store on the host: one directory per instance under ~/.berth
// (BERTH_HOME overrides it), mode 0700, holding
//
//	config.json          Config (driver, resources, shares)
//	id_ed25519[.pub]     the client key the agent authorizes (0600)
//	authorized_keys      the public half of it, handed to the agent
//	ssh_host_key[.pub]   the agent's host key, generated here; the private half (0600) is handed to the
//	                     agent, the public half is pinned by every client
//	hostagent.pid/.log   the hostagent's pid file and log
//	agent.log            the agent's (or VM console's) output
//	docker.sock          the Docker API socket the hostagent serves (0600)
//
// plus whatever state the platform driver keeps there.
package instance

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"golang.org/x/crypto/ssh"

	"github.com/berth-dev/berth/hostshim/transport"
	"github.com/berth-dev/berth/platform"
)

// DefaultName is the instance used when none is named.
const DefaultName = "default"

// ConfigVersion is the current config.json schema.
const ConfigVersion = 1

// HomeEnv overrides the store's root directory.
const HomeEnv = "BERTH_HOME"

// Errors of this package.
var (
	// ErrNotExist: no instance of that name.
	ErrNotExist = errors.New("instance: no such instance")
	// ErrExist: an instance of that name already exists.
	ErrExist = errors.New("instance: already exists")
	// ErrInvalid: a bad name or config.
	ErrInvalid = errors.New("instance: invalid")
)

// File names inside an instance directory.
const (
	configFile      = "config.json"
	clientKeyFile   = "id_ed25519"
	authKeysFile    = "authorized_keys"
	hostKeyFile     = "ssh_host_key"
	hostagentPID    = "hostagent.pid"
	hostagentLog    = "hostagent.log"
	agentLog        = "agent.log"
	dockerSocket    = "docker.sock"
	hostKeyPubTrail = ".pub"
)

// Config is an instance's configuration (config.json).
type Config struct {
	// Version is the schema version (ConfigVersion).
	Version int `json:"version"`
	// Driver is the platform driver's name ("native", "qemu", …).
	Driver string `json:"driver"`
	// CPUs is the number of virtual CPUs (VM drivers); 0 means the driver's default.
	CPUs int `json:"cpus,omitempty"`
	// MemoryMiB is the VM memory in MiB (VM drivers); 0 means the driver's default.
	MemoryMiB int `json:"memoryMiB,omitempty"`
	// Shares are host directories shared into the VM at the same path (VM drivers).
	Shares []string `json:"shares,omitempty"`
}

// Validate checks c.
func (c Config) Validate() error {
	switch {
	case c.Version != ConfigVersion:
		return fmt.Errorf("%w: config version %d (want %d)", ErrInvalid, c.Version, ConfigVersion)
	case c.Driver == "":
		return fmt.Errorf("%w: no driver", ErrInvalid)
	case c.CPUs < 0 || c.MemoryMiB < 0:
		return fmt.Errorf("%w: negative resources", ErrInvalid)
	}
	for _, s := range c.Shares {
		if !filepath.IsAbs(s) {
			return fmt.Errorf("%w: share %q is not an absolute path", ErrInvalid, s)
		}
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,31}$`)

// ValidName checks an instance name: 1–32 characters of letters, digits, '_', '.', '-', not starting with
// a punctuation character (so never "." or "..").
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: instance name %q (want 1-32 of [a-zA-Z0-9_.-], starting with a letter or digit)", ErrInvalid, name)
	}
	return nil
}

// Home returns the store root: $BERTH_HOME, or ~/.berth.
func Home() (string, error) {
	if h := os.Getenv(HomeEnv); h != "" {
		return filepath.Abs(h)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("locate the berth home: %w", err)
	}
	return filepath.Join(home, ".berth"), nil
}

// Store is a directory of instances.
type Store struct {
	// Root is the directory holding one subdirectory per instance.
	Root string
}

// DefaultStore is the store at Home().
func DefaultStore() (*Store, error) {
	root, err := Home()
	if err != nil {
		return nil, err
	}
	return &Store{Root: root}, nil
}

// Instance is one instance in a store.
type Instance struct {
	// Name is the instance name.
	Name string
	// Dir is its directory.
	Dir string
	// Config is its configuration.
	Config Config
}

// Load opens an existing instance.
func (s *Store) Load(name string) (*Instance, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.Root, name)
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("instance %s: %w", name, ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("load instance %s: %w", name, err)
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("load instance %s: %w: config.json: %w", name, ErrInvalid, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("load instance %s: %w", name, err)
	}
	return &Instance{Name: name, Dir: dir, Config: cfg}, nil
}

// Create makes a new instance: its directory (0700), keys and config.json, written last so that a
// half-created instance does not load. An existing one is ErrExist.
func (s *Store) Create(name string, cfg Config) (*Instance, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	if cfg.Version == 0 {
		cfg.Version = ConfigVersion
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("create instance %s: %w", name, err)
	}
	if err := os.MkdirAll(s.Root, 0o700); err != nil {
		return nil, fmt.Errorf("create instance %s: %w", name, err)
	}
	inst := &Instance{Name: name, Dir: filepath.Join(s.Root, name), Config: cfg}
	if _, err := os.Stat(inst.ConfigPath()); err == nil {
		return nil, fmt.Errorf("create instance %s: %w", name, ErrExist)
	}
	if err := os.Mkdir(inst.Dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create instance %s: %w", name, err)
	}
	if err := os.Chmod(inst.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create instance %s: %w", name, err)
	}
	if err := inst.ensureKeys(); err != nil {
		return nil, fmt.Errorf("create instance %s: %w", name, err)
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("create instance %s: %w", name, err)
	}
	if err := writeExclusive(inst.ConfigPath(), append(b, '\n'), 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create instance %s: %w", name, ErrExist)
		}
		return nil, fmt.Errorf("create instance %s: %w", name, err)
	}
	return inst, nil
}

// Ensure loads the instance, creating it with cfg if it does not exist. created tells which happened.
func (s *Store) Ensure(name string, cfg Config) (inst *Instance, created bool, err error) {
	inst, err = s.Load(name)
	if err == nil || !errors.Is(err, ErrNotExist) {
		return inst, false, err
	}
	inst, err = s.Create(name, cfg)
	if errors.Is(err, ErrExist) { // created concurrently
		inst, err = s.Load(name)
		return inst, false, err
	}
	return inst, err == nil, err
}

// Remove deletes the instance directory with everything in it. A missing instance is ErrNotExist.
func (s *Store) Remove(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	dir := filepath.Join(s.Root, name)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove instance %s: %w", name, ErrNotExist)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove instance %s: %w", name, err)
	}
	return nil
}

// List returns the names of the store's instances, sorted.
func (s *Store) List() ([]string, error) {
	ents, err := os.ReadDir(s.Root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() || ValidName(e.Name()) != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(s.Root, e.Name(), configFile)); err == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// ensureKeys creates the client key, authorized_keys and the agent's host key where missing.
func (i *Instance) ensureKeys() error {
	signer, err := transport.LoadOrCreateKey(i.ClientKeyPath())
	if err != nil {
		return err
	}
	if _, err := os.Stat(i.AuthorizedKeysPath()); errors.Is(err, fs.ErrNotExist) {
		if err := writeExclusive(i.AuthorizedKeysPath(), ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o600); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("write authorized keys: %w", err)
		}
	}
	if _, err := os.Stat(i.HostKeyPath()); errors.Is(err, fs.ErrNotExist) {
		_, pub, priv, err := transport.GenerateKey()
		if err != nil {
			return err
		}
		// The public half first: a private key without its pin would be unusable.
		if err := os.WriteFile(i.PinnedHostKeyPath(), pub, 0o644); err != nil {
			return fmt.Errorf("write host key: %w", err)
		}
		if err := writeExclusive(i.HostKeyPath(), priv, 0o600); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("write host key: %w", err)
		}
	}
	return nil
}

// writeExclusive creates path with b, failing with fs.ErrExist if it exists.
func writeExclusive(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// Paths of the instance's files.

// ConfigPath is config.json.
func (i *Instance) ConfigPath() string { return filepath.Join(i.Dir, configFile) }

// ClientKeyPath is the client's private key (its public half is at +".pub").
func (i *Instance) ClientKeyPath() string { return filepath.Join(i.Dir, clientKeyFile) }

// AuthorizedKeysPath is the authorized_keys file handed to the agent.
func (i *Instance) AuthorizedKeysPath() string { return filepath.Join(i.Dir, authKeysFile) }

// HostKeyPath is the agent's private host key (PEM, 0600), handed to the agent.
func (i *Instance) HostKeyPath() string { return filepath.Join(i.Dir, hostKeyFile) }

// PinnedHostKeyPath is the agent's public host key, pinned by clients.
func (i *Instance) PinnedHostKeyPath() string {
	return filepath.Join(i.Dir, hostKeyFile+hostKeyPubTrail)
}

// HostagentPIDPath is the hostagent's pid file.
func (i *Instance) HostagentPIDPath() string { return filepath.Join(i.Dir, hostagentPID) }

// HostagentLogPath is the hostagent's log.
func (i *Instance) HostagentLogPath() string { return filepath.Join(i.Dir, hostagentLog) }

// AgentLogPath is the agent's (or VM console's) log.
func (i *Instance) AgentLogPath() string { return filepath.Join(i.Dir, agentLog) }

// DockerSocketPath is the Docker API socket the hostagent serves.
func (i *Instance) DockerSocketPath() string { return filepath.Join(i.Dir, dockerSocket) }

// ClientSigner loads the client key.
func (i *Instance) ClientSigner() (ssh.Signer, error) {
	b, err := os.ReadFile(i.ClientKeyPath())
	if err != nil {
		return nil, fmt.Errorf("instance %s: client key: %w", i.Name, err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("instance %s: client key: %w: %w", i.Name, transport.ErrInvalidKey, err)
	}
	return s, nil
}

// PinnedHostKey loads the agent's pinned host key.
func (i *Instance) PinnedHostKey() (ssh.PublicKey, error) {
	b, err := os.ReadFile(i.PinnedHostKeyPath())
	if err != nil {
		return nil, fmt.Errorf("instance %s: pinned host key: %w", i.Name, err)
	}
	k, err := transport.ParseHostKey(b)
	if err != nil {
		return nil, fmt.Errorf("instance %s: pinned host key: %w", i.Name, err)
	}
	return k, nil
}

// Platform describes the instance to a platform driver.
func (i *Instance) Platform() platform.Instance {
	return platform.Instance{
		Name:               i.Name,
		Dir:                i.Dir,
		HostKeyFile:        i.HostKeyPath(),
		AuthorizedKeysFile: i.AuthorizedKeysPath(),
		CPUs:               i.Config.CPUs,
		MemoryMiB:          i.Config.MemoryMiB,
	}
}
