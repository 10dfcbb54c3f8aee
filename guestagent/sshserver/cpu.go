package sshserver

import "golang.org/x/sys/cpu"

// hasAESGCMHardware reports whether the CPU accelerates AES-GCM (AES rounds and carry-less multiply).
func hasAESGCMHardware() bool {
	return (cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ) || (cpu.ARM64.HasAES && cpu.ARM64.HasPMULL)
}
