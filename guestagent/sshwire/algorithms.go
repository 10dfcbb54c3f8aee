package sshwire

import (
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/cpu"
)

// Ciphers returns the cipher preference both ends configure: AES-GCM first on a CPU that accelerates it
// (AES rounds and carry-less multiply: the fastest secure choice there), ChaCha20-Poly1305 first otherwise.
// The client's order decides what is negotiated.
func Ciphers() []string {
	return ciphers(hasAESGCMHardware())
}

func ciphers(aesHardware bool) []string {
	if aesHardware {
		return []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM, ssh.CipherChaCha20Poly1305}
	}
	return []string{ssh.CipherChaCha20Poly1305, ssh.CipherAES128GCM, ssh.CipherAES256GCM}
}

// hasAESGCMHardware reports whether the CPU accelerates AES-GCM (AES rounds and carry-less multiply).
func hasAESGCMHardware() bool {
	return (cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ) || (cpu.ARM64.HasAES && cpu.ARM64.HasPMULL)
}
