// Package container is berth's container lifecycle manager: the layer the
// Docker-API engine calls for create, start, stop, kill, wait, restart,
// remove, exec, attach, logs, list and events, with Docker's semantics.
//
// Each container lives in Root/<id>/:
//
//	container.json   the Container record (config, host config, state), written atomically
//	rootfs/          overlayfs mount of the image's layers (upper/ and work/ beside it)
//	bundle/          the OCI bundle (config.json from specgen)
//	hostname, hosts, resolv.conf   bind-mounted over the container's /etc files
//	<id>-json.log    the json-file log
//	shim.json, shim.sock, exit.json, shim.log   the shim's config, socket, result and diagnostics
//
// The rootfs is mounted at create time (so that specgen resolves the user from
// the image's /etc/passwd) and stays mounted while the container exists; it is
// unmounted by Remove, and mounted again on start after a reboot of the agent's
// machine. Overlay mount data is limited to one page: when the lowerdir list
// does not fit with absolute paths, the mount is made from a thread that has
// its own working directory (unshare(CLONE_FS) on a locked OS thread) set to
// the layers' common parent, with relative lowerdirs.
//
// Every start spawns a shim (package shim): the agent binary re-executed with
// argv[1] "shim", in its own session, detached from the agent. The shim owns
// the container's init; the manager talks to it over its socket and learns of
// the exit from it or, after an agent restart, from exit.json. Open reconnects
// to the shims of running containers, so restarting the agent loses neither a
// container nor an exit code.
//
// Networking: with a network manager (Options.Network), a container on the
// default bridge, a user-defined network or "none" gets a persistent network
// namespace, RunRoot/netns/<id> (a bind mount), attached to its networks at
// create: the address, the veth and the hosts and resolv.conf files stay
// across stop and start and are made again at the next start when the
// namespace is gone (a reboot of the agent's machine). "host" shares the
// agent's namespace, "container:<id>" joins another container's. Remove
// (and a failed create) detaches every endpoint and deletes the namespace.
// Without a network manager every container but a "host" one gets a fresh,
// empty namespace at each start.
//
// Restart policies (no, always, unless-stopped, on-failure[:max]) are applied
// by the manager with Docker's backoff: 100 ms doubling up to a minute, reset
// after a run of 10 s. An explicit stop (or kill with the stop signal)
// suppresses the policy until the next start.
package container
