package instance

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/berth-dev/berth/vmimage/initramfs"
)

const hostKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"

func sampleConfig() Config {
	return Config{
		Name:           "default",
		AuthorizedKeys: []string{"ssh-ed25519 AAAAC3Nz host@a", "ssh-rsa AAAAB3 host@b"},
		HostKey:        []byte(hostKey),
		Shares:         []Share{{Tag: "home", Type: "9p", HostPath: "/Users/me", GuestPath: "/Users/me"}},
		CPUs:           2, MemoryMiB: 2048,
		Network:  Network{Interface: "eth0", Address: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: []string{"10.0.2.3"}},
		DataDisk: "/dev/vda",
	}
}

func TestArchiveRoundTrip(t *testing.T) {
	cfg := sampleConfig()
	b, err := Archive(cfg)
	if err != nil {
		t.Fatal(err)
	}
	es, err := initramfs.ReadEntries(b)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	seen := map[string]fs.FileMode{}
	for _, e := range es {
		seen["/"+e.Path] = e.Mode
		p := filepath.Join(root, filepath.FromSlash(e.Path))
		if e.Mode.IsDir() {
			os.MkdirAll(p, 0o755)
			continue
		}
		if err := os.WriteFile(p, e.Data, 0o600); err != nil {
			t.Fatal(err)
		}
		if e.Path == strings.TrimPrefix(ConfigPath, "/") {
			if strings.Contains(string(e.Data), "PRIVATE KEY") || strings.Contains(string(e.Data), "ssh-ed25519") {
				t.Fatalf("keys leaked into instance.json:\n%s", e.Data)
			}
		}
	}
	for _, p := range []string{ConfigPath, AuthorizedKeysPath, HostKeyPath} {
		if seen[p] != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, seen[p])
		}
	}
	got, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Version = Version
	if !reflect.DeepEqual(got, cfg) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, cfg)
	}
}

func TestValidate(t *testing.T) {
	for name, mut := range map[string]func(*Config){
		"newer schema":   func(c *Config) { c.Version = Version + 1 },
		"public hostkey": func(c *Config) { c.HostKey = []byte("ssh-ed25519 AAAA") },
		"multiline key":  func(c *Config) { c.AuthorizedKeys = []string{"a\nb"} },
		"dup tag":        func(c *Config) { c.Shares = append(c.Shares, c.Shares[0]) },
		"share type":     func(c *Config) { c.Shares[0].Type = "nfs" },
		"relative guest": func(c *Config) { c.Shares[0].GuestPath = "home" },
	} {
		c := sampleConfig()
		mut(&c)
		if _, err := Archive(c); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Error("Load of an empty root succeeded")
	}
}
