package specgen

import (
	"fmt"
	"path"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var knownNamespaces = map[specs.LinuxNamespaceType]bool{
	specs.PIDNamespace: true, specs.NetworkNamespace: true, specs.MountNamespace: true,
	specs.IPCNamespace: true, specs.UTSNamespace: true, specs.UserNamespace: true,
	specs.CgroupNamespace: true, specs.TimeNamespace: true,
}

// Validate checks the invariants a runtime relies on: a version, a root
// path, a process with a non-empty argv and an absolute cwd, clean absolute
// mount destinations, absolute bind sources, known and unique namespaces
// with absolute join paths, and a UTS namespace when a hostname is set.
// Generate runs it on every spec it returns; errors wrap ErrInvalid.
func Validate(s *specs.Spec) error {
	if s == nil {
		return fmt.Errorf("nil spec: %w", ErrInvalid)
	}
	if s.Version == "" {
		return fmt.Errorf("spec: empty ociVersion: %w", ErrInvalid)
	}
	if s.Root == nil || s.Root.Path == "" {
		return fmt.Errorf("spec: empty root path: %w", ErrInvalid)
	}
	if err := ValidateProcess(s.Process); err != nil {
		return err
	}
	for _, m := range s.Mounts {
		if err := cleanDestination("mount destination", m.Destination); err != nil {
			return err
		}
		if isBindMount(m) && !path.IsAbs(m.Source) {
			return fmt.Errorf("mount %s: bind source %q is not absolute: %w", m.Destination, m.Source, ErrInvalid)
		}
	}
	if s.Linux == nil {
		return nil
	}
	seen := map[specs.LinuxNamespaceType]bool{}
	for _, ns := range s.Linux.Namespaces {
		if !knownNamespaces[ns.Type] {
			return fmt.Errorf("namespace %q: unknown type: %w", ns.Type, ErrInvalid)
		}
		if seen[ns.Type] {
			return fmt.Errorf("namespace %q: listed twice: %w", ns.Type, ErrInvalid)
		}
		seen[ns.Type] = true
		if ns.Path != "" && !path.IsAbs(ns.Path) {
			return fmt.Errorf("namespace %q: path %q is not absolute: %w", ns.Type, ns.Path, ErrInvalid)
		}
	}
	if s.Hostname != "" && !seen[specs.UTSNamespace] {
		return fmt.Errorf("hostname %q needs a UTS namespace: %w", s.Hostname, ErrInvalid)
	}
	for _, p := range append(append([]string(nil), s.Linux.MaskedPaths...), s.Linux.ReadonlyPaths...) {
		if !path.IsAbs(p) {
			return fmt.Errorf("masked or read-only path %q is not absolute: %w", p, ErrInvalid)
		}
	}
	return nil
}

// ValidateProcess checks a process: non-nil, a non-empty argv whose first
// element is not empty, an absolute cwd, env entries with names.
func ValidateProcess(p *specs.Process) error {
	if p == nil {
		return fmt.Errorf("spec: no process: %w", ErrInvalid)
	}
	if len(p.Args) == 0 || p.Args[0] == "" {
		return fmt.Errorf("process: empty args: %w", ErrInvalid)
	}
	if !path.IsAbs(p.Cwd) {
		return fmt.Errorf("process: cwd %q is not absolute: %w", p.Cwd, ErrInvalid)
	}
	return validateEnv(p.Env)
}
