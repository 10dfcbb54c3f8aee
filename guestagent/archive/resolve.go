package archive

// resolveMode selects how paths are resolved inside the root. Tests force the
// portable walk so both implementations run everywhere.
type resolveMode int

const (
	// resolveAuto uses openat2(RESOLVE_IN_ROOT) and falls back to the walk
	// when the kernel (or a seccomp filter) refuses openat2.
	resolveAuto resolveMode = iota
	// resolveWalk always walks component by component with O_NOFOLLOW.
	resolveWalk
)
