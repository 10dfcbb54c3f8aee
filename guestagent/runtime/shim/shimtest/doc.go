// Package shimtest provides a fake shim.Runtime for unprivileged tests: each
// "container" is a plain host process (the spec's process args, env and cwd,
// without namespaces, cgroups or a rootfs), held before exec until Start.
package shimtest
