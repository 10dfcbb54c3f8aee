// Package instance defines the per-instance configuration that the host
// hands to the guest agent, and packs it as a small cpio archive appended to
// the base initramfs (the kernel unpacks both into the same rootfs), so that
// no secret ever appears on the kernel command line.
//
// Inside the guest the archive yields:
//
//	/etc/berth/instance.json     Config as JSON (0600), without the keys
//	/etc/berth/authorized_keys   Config.AuthorizedKeys, one per line (0600)
//	/etc/berth/ssh_host_key      Config.HostKey, PEM (0600)
//
// The host imports this package to write the archive, the agent to read
// the configuration (Load). It is pure Go and builds on every OS.
package instance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/vmimage/initramfs"
)

// Paths inside the guest.
const (
	Dir                = "/etc/berth"
	ConfigPath         = Dir + "/instance.json"
	AuthorizedKeysPath = Dir + "/authorized_keys"
	HostKeyPath        = Dir + "/ssh_host_key"
)

// Version is the current Config schema version.
const Version = 1

// ErrInvalid: a Config fails validation.
var ErrInvalid = errors.New("instance: invalid config")

// Config is the per-instance configuration of one VM.
type Config struct {
	// Version of this schema (Version); the agent refuses newer ones.
	Version int `json:"version"`
	// Name of the instance ("default"); also the guest's hostname.
	Name string `json:"name"`
	// AuthorizedKeys are the SSH public keys (authorized_keys format) the
	// agent's SSH server accepts. Written to AuthorizedKeysPath, not to the
	// JSON.
	AuthorizedKeys []string `json:"-"`
	// HostKey is the agent's SSH host private key, PEM; the host pins its
	// public half. Written to HostKeyPath, not to the JSON.
	HostKey []byte `json:"-"`
	// Shares are the host directories mounted into the guest.
	Shares []Share `json:"shares,omitempty"`
	// CPUs and MemoryMiB are the VM's resources, as the host configured
	// them (informational for the agent: the VM already has them).
	CPUs      int `json:"cpus,omitempty"`
	MemoryMiB int `json:"memoryMiB,omitempty"`
	// Network configures the guest's uplink.
	Network Network `json:"network"`
	// DataDisk is the guest device of the persistent ext4 disk ("/dev/vda");
	// empty means no disk: state lives in tmpfs.
	DataDisk string `json:"dataDisk,omitempty"`
	// Agent holds extra berth-agent arguments (e.g. "--debug").
	Agent []string `json:"agent,omitempty"`
}

// Share is one host directory shared into the guest.
type Share struct {
	// Tag is the 9p mount tag or virtiofs tag the VMM exposes.
	Tag string `json:"tag"`
	// Type is "9p" or "virtiofs".
	Type string `json:"type"`
	// HostPath is the directory on the host (informational in the guest).
	HostPath string `json:"hostPath"`
	// GuestPath is where the agent mounts it (usually equal to HostPath).
	GuestPath string `json:"guestPath"`
	// ReadOnly mounts the share read-only.
	ReadOnly bool `json:"readOnly,omitempty"`
}

// Network is the guest's uplink configuration; zero values mean DHCP-less
// QEMU user networking defaults (10.0.2.15/24 via 10.0.2.2, DNS 10.0.2.3).
type Network struct {
	// Interface is the uplink ("eth0").
	Interface string `json:"interface,omitempty"`
	// Address in CIDR form ("10.0.2.15/24").
	Address string `json:"address,omitempty"`
	// Gateway address ("10.0.2.2").
	Gateway string `json:"gateway,omitempty"`
	// DNS servers for containers and the agent.
	DNS []string `json:"dns,omitempty"`
	// MTU of the uplink; 0 keeps the default.
	MTU int `json:"mtu,omitempty"`
}

// Validate checks the fields the guest cannot do without.
func (c *Config) Validate() error {
	if c.Version > Version {
		return fmt.Errorf("%w: schema version %d is newer than %d", ErrInvalid, c.Version, Version)
	}
	if len(c.HostKey) > 0 && !bytes.Contains(c.HostKey, []byte("PRIVATE KEY-----")) {
		return fmt.Errorf("%w: host key is not a PEM private key", ErrInvalid)
	}
	for _, k := range c.AuthorizedKeys {
		if strings.ContainsAny(k, "\n\r") || strings.TrimSpace(k) == "" {
			return fmt.Errorf("%w: authorized key must be one non-empty line", ErrInvalid)
		}
	}
	tags := map[string]bool{}
	for _, s := range c.Shares {
		if s.Tag == "" || tags[s.Tag] {
			return fmt.Errorf("%w: share tag %q empty or repeated", ErrInvalid, s.Tag)
		}
		tags[s.Tag] = true
		if s.Type != "9p" && s.Type != "virtiofs" {
			return fmt.Errorf("%w: share %s type %q", ErrInvalid, s.Tag, s.Type)
		}
		if !strings.HasPrefix(s.GuestPath, "/") {
			return fmt.Errorf("%w: share %s guest path %q is not absolute", ErrInvalid, s.Tag, s.GuestPath)
		}
	}
	return nil
}

// Archive returns the gzip'd cpio holding c, to append to the base
// initramfs (see initramfs.Concat).
func Archive(c Config) ([]byte, error) {
	if c.Version == 0 {
		c.Version = Version
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	js, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("instance config: %w", err)
	}
	a := initramfs.New()
	for _, err := range []error{
		a.Dir("etc", 0o755),
		a.Dir(Dir, 0o700),
		a.File(ConfigPath, 0o600, append(js, '\n')),
	} {
		if err != nil {
			return nil, err
		}
	}
	if len(c.AuthorizedKeys) > 0 {
		if err := a.File(AuthorizedKeysPath, 0o600, []byte(strings.Join(c.AuthorizedKeys, "\n")+"\n")); err != nil {
			return nil, err
		}
	}
	if len(c.HostKey) > 0 {
		if err := a.File(HostKeyPath, 0o600, c.HostKey); err != nil {
			return nil, err
		}
	}
	return a.Bytes(initramfs.Gzip)
}

// Load reads the configuration the archive placed under root ("/" in the
// guest), keys included.
func Load(root string) (Config, error) {
	var c Config
	b, err := os.ReadFile(filepath.Join(root, ConfigPath))
	if err != nil {
		return c, fmt.Errorf("instance config: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%w: %s: %v", ErrInvalid, ConfigPath, err)
	}
	if k, err := os.ReadFile(filepath.Join(root, AuthorizedKeysPath)); err == nil {
		for _, l := range strings.Split(string(k), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				c.AuthorizedKeys = append(c.AuthorizedKeys, l)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("instance keys: %w", err)
	}
	if k, err := os.ReadFile(filepath.Join(root, HostKeyPath)); err == nil {
		c.HostKey = k
	} else if !errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("instance host key: %w", err)
	}
	return c, c.Validate()
}
