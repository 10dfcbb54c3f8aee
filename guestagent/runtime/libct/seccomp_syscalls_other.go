//go:build linux && !amd64 && !arm64

package libct

// auditArch is 0 where berth has no syscall table: seccomp profiles are
// refused there.
const auditArch = 0

var syscallNumbers map[string]uint32
