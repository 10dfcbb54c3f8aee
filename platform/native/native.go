// Package native is the platform driver for a Linux host without a VM: the guest agent (`berth-agent
// serve`) runs as a local process in fresh network and mount namespaces, a "light VM" (DESIGN.md §7). Its
// bridge, nftables rules and overlay mounts never touch the host's own network or mount table, and the
// hostagent reaches it exactly as it reaches a VM: SSH over a unix socket (<instance>/agent.ssh), pinned
// host key, direct-streamlocal to the engine socket, direct-tcpip to containers.
//
// Outbound network: the agent's namespace has no uplink of its own. When Debian's slirp4netns is installed
// the driver attaches it (user-mode networking like QEMU's user-net: the namespace gets tap0 with
// 10.0.2.100/24, gateway 10.0.2.2 which also reaches the host's loopback, DNS 10.0.2.3); otherwise the
// agent runs without outbound network and Status says so. No interface or rule is ever created in the
// host's namespace.
//
// Everything the agent starts is kept in one cgroup of the instance (below the caller's own cgroup, in the
// pids hierarchy on cgroup v1, the unified one on v2), so Stop can end containers that outlive the agent
// and leave nothing behind.
//
// State in the instance directory: data/ (images, containers), run/ (runtime state, the engine socket),
// agent.ssh (SSH endpoint), agent.handoff (published ports handed over as descriptors), agent.pid, agent.log, agent.cgroup, slirp.pid. The driver needs root.
package native

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/berth-dev/berth/platform"
)

// Name is the driver's name.
const Name = "native"

// AgentEnv names the agent binary when Options.AgentPath is empty.
const AgentEnv = "BERTH_AGENT"

// Options configures the driver.
type Options struct {
	// AgentPath is the berth-agent binary; empty means $BERTH_AGENT, then berth-agent next to the running
	// executable, then bin/berth-agent in the working directory.
	AgentPath string
	// Slirp4netns is the slirp4netns binary; empty means looking it up in PATH.
	Slirp4netns string
	// NoUplink runs the agent without outbound network even if slirp4netns is available.
	NoUplink bool
	// Debug runs the agent with --debug.
	Debug bool
}

// Driver runs one instance's agent as a local process. Create it with New.
type Driver struct {
	inst platform.Instance
	opts Options
	p    paths
}

var (
	_ platform.Driver      = (*Driver)(nil)
	_ platform.Preflighter = (*Driver)(nil)
	_ platform.AgentLogger = (*Driver)(nil)
	_ platform.Handoffer   = (*Driver)(nil)
)

// New returns the driver for inst.
func New(inst platform.Instance, opts Options) *Driver {
	return &Driver{inst: inst, opts: opts, p: pathsOf(inst.Dir)}
}

// Name returns "native".
func (d *Driver) Name() string { return Name }

// EngineSocket is the engine socket inside the agent's namespaces: <instance>/run/docker.sock (the
// mount namespace starts as a copy of the host's, so the path is the same; the host never dials it directly).
func (d *Driver) EngineSocket() string { return d.p.engineSocket }

// HandoffSocket is <instance>/agent.handoff: the agent runs on this kernel, so published ports are handed
// to it as descriptors instead of being carried over SSH.
func (d *Driver) HandoffSocket() string { return d.p.handoffSocket }

// AgentLog is <instance>/agent.log.
func (d *Driver) AgentLog() string { return d.p.agentLog }

// paths are the driver's files in the instance directory.
type paths struct {
	dir, data, run, engineSocket, sshSocket, handoffSocket, agentPID, agentLog, cgroupFile, slirpPID string
}

func pathsOf(dir string) paths {
	return paths{
		dir:           dir,
		data:          filepath.Join(dir, "data"),
		run:           filepath.Join(dir, "run"),
		engineSocket:  filepath.Join(dir, "run", "docker.sock"),
		sshSocket:     filepath.Join(dir, "agent.ssh"),
		handoffSocket: filepath.Join(dir, "agent.handoff"),
		agentPID:      filepath.Join(dir, "agent.pid"),
		agentLog:      filepath.Join(dir, "agent.log"),
		cgroupFile:    filepath.Join(dir, "agent.cgroup"),
		slirpPID:      filepath.Join(dir, "slirp.pid"),
	}
}

// BridgeMTU is the MTU of the agent's container bridges: that of slirp4netns's tap0 (slirpArgs), the
// agent's only other link, so that container traffic is not cut into 1500-byte segments on its way to the
// agent (published ports, whose throughput it nearly doubles here) or to the uplink.
const BridgeMTU = 65520

// agentArgs is the agent's argv. --bridge: the agent's network namespace is
// its own (the driver made it), so bridges and nftables rules there are
// safe; the agent's own check would otherwise race slirp4netns's tap0.
func agentArgs(agent string, inst platform.Instance, p paths, debug bool) []string {
	argv := []string{agent}
	if debug {
		argv = append(argv, "--debug")
	}
	return append(argv, "serve",
		"--socket", p.engineSocket,
		"--root", p.data,
		"--run-root", p.run,
		"--ssh-listen", "unix:"+p.sshSocket,
		"--handoff-listen", p.handoffSocket,
		"--ssh-host-key", inst.HostKeyFile,
		"--ssh-authorized-keys", inst.AuthorizedKeysFile,
		"--bridge",
		"--mtu", strconv.Itoa(BridgeMTU),
	)
}

// slirpArgs is slirp4netns's argv: configure tap0 in the namespace of pid, report readiness on fd 3.
func slirpArgs(slirp string, pid int) []string {
	return []string{slirp, "--configure", "--mtu=" + strconv.Itoa(BridgeMTU), "--ready-fd=3", strconv.Itoa(pid), "tap0"}
}

// ErrNoAgent: the agent binary was not found.
var ErrNoAgent = errors.New("native: berth-agent binary not found")

// findAgent resolves the agent binary: explicit, then env, then next to exe, then bin/ under cwd.
func findAgent(explicit, env, exe, cwd string, exists func(string) bool) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if env != "" {
		return env, nil
	}
	var cands []string
	if exe != "" {
		dir := filepath.Dir(exe)
		cands = append(cands,
			filepath.Join(dir, "berth-agent"),
			filepath.Join(dir, "..", "lib", "berth", "berth-agent"), // deb/rpm: /usr/bin/berth → /usr/lib/berth/berth-agent
			filepath.Join(dir, "..", "libexec", "berth-agent"),      // Homebrew: bin/berth → libexec/berth-agent
		)
	}
	cands = append(cands, filepath.Join(cwd, "bin", "berth-agent"))
	for _, c := range cands {
		if exists(c) {
			return c, nil
		}
	}
	return "", fmt.Errorf("%w (set --agent or %s; tried %v)", ErrNoAgent, AgentEnv, cands)
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
