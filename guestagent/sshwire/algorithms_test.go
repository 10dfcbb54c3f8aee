package sshwire

import (
	"slices"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestCiphers(t *testing.T) {
	if got := ciphers(true)[0]; got != ssh.CipherAES128GCM {
		t.Errorf("with AES hardware first cipher = %s", got)
	}
	if got := ciphers(false)[0]; got != ssh.CipherChaCha20Poly1305 {
		t.Errorf("without AES hardware first cipher = %s", got)
	}
	// Both orders offer the same set, so two ends on different CPUs still agree on a cipher.
	a, b := ciphers(true), ciphers(false)
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		t.Errorf("cipher sets differ: %v, %v", a, b)
	}
	if got, want := Ciphers(), ciphers(hasAESGCMHardware()); !slices.Equal(got, want) {
		t.Errorf("Ciphers() = %v, want %v", got, want)
	}
}
