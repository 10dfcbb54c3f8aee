package instance

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestCreateLoad(t *testing.T) {
	s := &Store{Root: filepath.Join(t.TempDir(), "home")}
	inst, err := s.Create("default", Config{Driver: "native", CPUs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		for path, want := range map[string]os.FileMode{
			inst.Dir: 0o700, s.Root: 0o700, inst.ConfigPath(): 0o600, inst.ClientKeyPath(): 0o600,
			inst.HostKeyPath(): 0o600, inst.AuthorizedKeysPath(): 0o600,
		} {
			st, err := os.Stat(path)
			if err != nil || st.Mode().Perm() != want {
				t.Errorf("%s: mode %v (want %v) %v", path, st.Mode().Perm(), want, err)
			}
		}
	}
	got, err := s.Load("default")
	if err != nil {
		t.Fatal(err)
	}
	if got.Config.Driver != "native" || got.Config.CPUs != 2 || got.Config.Version != ConfigVersion || got.Dir != inst.Dir {
		t.Fatalf("loaded %+v", got)
	}
	if _, err := s.Create("default", Config{Driver: "native"}); !errors.Is(err, ErrExist) {
		t.Fatalf("second Create: %v", err)
	}
	if _, err := s.Load("other"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("Load missing: %v", err)
	}
	e, created, err := s.Ensure("default", Config{Driver: "qemu"})
	if err != nil || created || e.Config.Driver != "native" {
		t.Fatalf("Ensure existing: %+v %v %v", e, created, err)
	}
	if _, created, err := s.Ensure("second", Config{Driver: "qemu"}); err != nil || !created {
		t.Fatalf("Ensure new: %v %v", created, err)
	}
	names, err := s.List()
	if err != nil || len(names) != 2 || names[0] != "default" || names[1] != "second" {
		t.Fatalf("List: %q %v", names, err)
	}
	if err := s.Remove("second"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("second"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("Remove twice: %v", err)
	}
	p := inst.Platform()
	if p.Name != "default" || p.Dir != inst.Dir || p.HostKeyFile != inst.HostKeyPath() || p.AuthorizedKeysFile != inst.AuthorizedKeysPath() || p.CPUs != 2 {
		t.Fatalf("Platform: %+v", p)
	}
}

// The pinned key is the public half of the key handed to the agent; the authorized key is the client's.
func TestKeys(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	inst, err := s.Create("k", Config{Driver: "native"})
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := inst.PinnedHostKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(inst.HostKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	hostSigner, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hostSigner.PublicKey().Marshal(), pinned.Marshal()) {
		t.Fatal("pinned host key is not the agent's key")
	}
	client, err := inst.ClientSigner()
	if err != nil {
		t.Fatal(err)
	}
	ak, err := os.ReadFile(inst.AuthorizedKeysPath())
	if err != nil {
		t.Fatal(err)
	}
	authorized, _, _, _, err := ssh.ParseAuthorizedKey(ak)
	if err != nil || !bytes.Equal(authorized.Marshal(), client.PublicKey().Marshal()) {
		t.Fatalf("authorized key is not the client's: %v", err)
	}
	if bytes.Equal(client.PublicKey().Marshal(), pinned.Marshal()) {
		t.Fatal("client and host keys are the same")
	}
	// A second instance gets its own keys.
	other, err := s.Create("k2", Config{Driver: "native"})
	if err != nil {
		t.Fatal(err)
	}
	op, _ := other.PinnedHostKey()
	if bytes.Equal(op.Marshal(), pinned.Marshal()) {
		t.Fatal("two instances share a host key")
	}
	// A tampered pin fails to parse rather than pinning nothing.
	if err := os.WriteFile(inst.PinnedHostKeyPath(), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := inst.PinnedHostKey(); err == nil {
		t.Fatal("garbage pin accepted")
	}
}

func TestValidation(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	for _, n := range []string{"", ".", "..", "a/b", "-x", "_x", "a b", "abcdefghijabcdefghijabcdefghijabc", `a\b`} {
		if _, err := s.Create(n, Config{Driver: "native"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("name %q: %v", n, err)
		}
		if _, err := s.Load(n); !errors.Is(err, ErrInvalid) {
			t.Errorf("load name %q: %v", n, err)
		}
	}
	for _, c := range []Config{{}, {Driver: "native", CPUs: -1}, {Driver: "native", Shares: []string{"rel/path"}}, {Version: 9, Driver: "native"}} {
		if _, err := s.Create("x", c); !errors.Is(err, ErrInvalid) {
			t.Errorf("config %+v: %v", c, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(s.Root, "bad"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Root, "bad", "config.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("bad"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad json: %v", err)
	}
}

func TestHome(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(HomeEnv, dir)
	if h, err := Home(); err != nil || h != dir {
		t.Fatalf("Home with %s: %q %v", HomeEnv, h, err)
	}
	t.Setenv(HomeEnv, "")
	t.Setenv("HOME", dir)
	t.Setenv("USERPROFILE", dir)
	if h, err := Home(); err != nil || h != filepath.Join(dir, ".berth") {
		t.Fatalf("Home: %q %v", h, err)
	}
}
