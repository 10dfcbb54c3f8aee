// Package lima is the platform driver for macOS (and Linux hosts with Lima installed): it drives `limactl`
// as a subprocess (DESIGN.md §7, as Colima does) to run a Linux VM in which berth-agent serves the engine.
//
// The driver writes <instance>/lima.yaml (vmType vz with virtiofs, or qemu with 9p; $HOME and configured
// roots shared at the same path; Rosetta optional; CPUs, memory and disk from berth's config; Lima's own
// port forwarding and containerd disabled, because berth forwards ports itself) and runs `limactl create`,
// `start`, `stop`, `delete` and `list --json` with LIMA_HOME set to a directory of its own, so berth's VMs
// never mix with the user's Lima instances.
//
// A provisioning script (run as root by Lima on every boot) installs the berth-agent binary, which the
// driver puts in a read-only share, as a systemd service (`berth-agent serve --socket /run/berth/docker.sock`),
// creates the guest user "berth" that authorizes the instance's client key, and makes the guest's OpenSSH
// present the instance's pinned host key. berth's transport then dials the TCP address `limactl list`
// reports for the guest's sshd, authenticates as "berth" (transport.DefaultUser) and opens
// direct-streamlocal channels to the engine socket, which the service makes group-accessible to "berth".
//
// The lima.yaml types are berth's own (limayaml.go), mirroring the fields of Lima v2.2.0's pkg/limatype
// that berth needs: importing pkg/limatype would pull Lima's module requirements into berth's build
// (upgrading modules other packages use). Everything that can be pure (lima.yaml, argv, the provisioning
// script, decoding `limactl list --json`) is a pure function with golden tests; the driver is the thin part
// that runs limactl.
package lima
