package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
)

// ErrInvalidKey is returned for key material that does not parse.
var ErrInvalidKey = errors.New("transport: invalid key")

// GenerateKey generates an ed25519 key and returns it as a signer, in authorized_keys form (one line), and
// as an OpenSSH PEM private key.
func GenerateKey() (signer ssh.Signer, authorizedKey, privatePEM []byte, err error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	signer, err = ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("ssh signer: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("marshal private key: %w", err)
	}
	return signer, ssh.MarshalAuthorizedKey(signer.PublicKey()), pem.EncodeToMemory(block), nil
}

// LoadOrCreateKey loads the private key at path, or generates one and writes it there (mode 0600, directory
// 0700) with its public half at path+".pub" (authorized_keys form).
func LoadOrCreateKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("load key %s: %w: %w", path, ErrInvalidKey, err)
		}
		return s, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load key %s: %w", path, err)
	}
	s, pub, priv, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create key %s: %w", path, err)
	}
	if err := writeFileAtomic(path+".pub", pub, 0o644, true); err != nil {
		return nil, fmt.Errorf("create key %s: %w", path, err)
	}
	if err := writeFileAtomic(path, priv, 0o600, false); err != nil {
		if errors.Is(err, fs.ErrExist) { // another process won the race: use its key
			return LoadOrCreateKey(path)
		}
		return nil, fmt.Errorf("create key %s: %w", path, err)
	}
	return s, nil
}

// writeFileAtomic writes b to a temporary file and then renames it to path (replace) or links it there only
// if path does not exist yet (fs.ErrExist otherwise), so a reader never sees a partial key.
func writeFileAtomic(path string, b []byte, mode os.FileMode, replace bool) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if replace {
		return os.Rename(tmp, path)
	}
	return os.Link(tmp, path)
}

// MarshalHostKey returns key in authorized_keys form (one line), for storing a pinned host key.
func MarshalHostKey(key ssh.PublicKey) []byte {
	return ssh.MarshalAuthorizedKey(key)
}

// ParseHostKey parses a key stored by MarshalHostKey (or the SSH wire form).
func ParseHostKey(b []byte) (ssh.PublicKey, error) {
	if k, _, _, _, err := ssh.ParseAuthorizedKey(b); err == nil {
		return k, nil
	}
	k, err := ssh.ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("parse host key: %w", ErrInvalidKey)
	}
	return k, nil
}
