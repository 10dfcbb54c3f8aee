// Package hcs runs Windows containers on Windows Server through the Host Compute Service (DESIGN.md §7):
// berth's engine API (the Docker Engine API subset of guestagent/engine) served on the named pipe
// \\.\pipe\berth_engine, so the docker CLI and berth's CLI work unchanged.
//
// The package is split the usual way (STYLE.md items 1 and 4). Everything that can be pure builds and is
// tested on every OS: the Windows path rules (CleanWindowsPath: no drive-relative "C:..\x", no device
// "\\?\" or "\\.\" paths, no ".." components, no UNC unless allowed), -v binds to HCS mapped directories
// (ParseBind), Docker's port bindings to HNS NAT policies (NatPolicies), a create request to an HCS
// container document and process config (MakePlan), and the pipe's security descriptor (PipeSDDL).
// The backend that calls hcsshim, HNS and go-winio lives in *_windows.go files: a ContainerService for the
// engine (containers with process isolation by default, Hyper-V isolation as an option; scratch layers;
// HNS NAT endpoints with port mappings; mapped directories; the first process's stdio owned by the
// service, its output kept in a json-file log and fanned out to attached clients, attached input with
// OpenStdin, a console with Tty; docker exec as further processes of the compute system, with stdio
// pipes, exit code and console resize), a layer importer for image layers (ociwclayer), and the pipe
// listener. The attach/exec plumbing (stdio.go) is plain Go and is tested with a fake runtime.
package hcs
