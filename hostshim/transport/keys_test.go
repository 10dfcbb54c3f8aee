package transport

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "id_ed25519")
	s1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if s1.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("key type %s", s1.PublicKey().Type())
	}
	if runtime.GOOS != "windows" {
		for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
			fi, err := os.Stat(p)
			if err != nil || fi.Mode().Perm() != want {
				t.Fatalf("%s: mode %v, %v; want %v", p, fi.Mode().Perm(), err, want)
			}
		}
	}
	s2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s1.PublicKey().Marshal(), s2.PublicKey().Marshal()) {
		t.Fatal("second load returned another key")
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseHostKey(pub)
	if err != nil || !bytes.Equal(k.Marshal(), s1.PublicKey().Marshal()) {
		t.Fatalf(".pub does not hold the public key: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 2 {
		t.Fatalf("key dir holds %d entries, want 2 (no temporary files left)", len(entries))
	}

	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(path); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("load garbage = %v, want ErrInvalidKey", err)
	}
}

func TestHostKeyRoundTrip(t *testing.T) {
	s, authorized, privPEM, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	line := MarshalHostKey(s.PublicKey())
	if !bytes.Equal(line, authorized) {
		t.Fatalf("MarshalHostKey %q != authorized_keys line %q", line, authorized)
	}
	for _, b := range [][]byte{line, s.PublicKey().Marshal()} {
		k, err := ParseHostKey(b)
		if err != nil || !bytes.Equal(k.Marshal(), s.PublicKey().Marshal()) {
			t.Fatalf("ParseHostKey(%q) = %v", b, err)
		}
	}
	if _, err := ParseHostKey([]byte("not a key")); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("ParseHostKey(garbage) = %v", err)
	}
	s2, err := ssh.ParsePrivateKey(privPEM)
	if err != nil || !bytes.Equal(s2.PublicKey().Marshal(), s.PublicKey().Marshal()) {
		t.Fatalf("private PEM does not round-trip: %v", err)
	}
}
