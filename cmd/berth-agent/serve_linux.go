package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/vishvananda/netlink"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/guestagent/cgroups"
	"github.com/berth-dev/berth/guestagent/engine"
	"github.com/berth-dev/berth/guestagent/image"
	"github.com/berth-dev/berth/guestagent/network"
	"github.com/berth-dev/berth/guestagent/runtime/container"
	"github.com/berth-dev/berth/guestagent/sshserver"
	"github.com/berth-dev/berth/guestagent/sysinit"
)

func init() {
	commands = append(commands, &cli.Command{
		Name:  "serve",
		Usage: "serve the Docker-compatible engine API on a unix socket (native mode, or inside the VM)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "socket", Value: "/run/berth/docker.sock", Usage: "unix socket to listen on (created 0600 in a 0700 directory)"},
			&cli.StringFlag{Name: "root", Value: "/var/lib/berth", Usage: "directory for images and containers"},
			&cli.StringFlag{Name: "run-root", Value: "/run/berth", Usage: "directory for runtime state (lost on reboot)"},
			&cli.StringSliceFlag{Name: "preload", Usage: "image tarball (docker save or OCI archive) to load before serving, once per --root (the VM's built-in demo image)"},
			&cli.StringFlag{Name: "ssh-listen", Usage: "also serve the host's SSH transport on unix:PATH, tcp:ADDR or vsock:PORT"},
			&cli.StringFlag{Name: "handoff-listen", Usage: "with --ssh-listen: accept published-port connections handed over as descriptors on the unix socket PATH (an agent on the host's kernel)"},
			&cli.IntFlag{Name: "mtu", Usage: "MTU of container bridges and veths (dockerd's --mtu); 0 means 1500"},
			&cli.StringFlag{Name: "ssh-host-key", Usage: "PEM private host key of the SSH transport (given by the host, which pins it)"},
			&cli.StringFlag{Name: "ssh-authorized-keys", Usage: "authorized_keys file: the only client keys the SSH transport accepts"},
			&cli.BoolFlag{Name: "bridge", Usage: "create bridges, veths and nftables rules for container networks even when the agent " +
				"shares the network namespace of PID 1 (the host's). By default the agent networks containers only when it is " +
				"network-isolated (PID 1 of a VM, or in a network namespace of its own, as the native driver starts it); " +
				"otherwise every container gets an empty namespace with loopback only and /networks answers 503"},
			&cli.StringFlag{Name: "wait-network", Usage: "wait until this file exists before setting up container networking (berth's VM init creates it once the kernel modules for it are loaded)"},
			&cli.StringFlag{Name: "wait-boot", Usage: "wait until this file exists before opening the containers (berth's VM init creates it once its background kernel modules are loaded and the shares mounted)"},
		},
		Action: serve,
	})
}

func serve(c *cli.Context) error {
	log := slog.Default()
	// In a fresh network namespace (native mode, the VM's init) loopback
	// starts down; the engine and containers' port forwards need it.
	if err := loopbackUp(); err != nil {
		return err
	}
	root, runRoot := c.String("root"), c.String("run-root")
	for _, d := range []string{root, runRoot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	store, err := image.Open(image.Options{Root: filepath.Join(root, "images"), Logger: log.With("component", "images")})
	if err != nil {
		return err
	}
	defer store.Close()
	for _, tarball := range c.StringSlice("preload") {
		preload(c.Context, store, root, tarball, log)
	}
	if f := c.String("wait-network"); f != "" {
		if err := sysinit.WaitFile(c.Context, f, time.Minute); err != nil {
			log.Warn("the VM's network modules are not loaded; going on", "err", err)
		}
	}
	nets := openNetwork(c.Context, filepath.Join(root, "network"), c.Bool("bridge"), c.Int("mtu"), log.With("component", "network"))
	if nets != nil {
		// Closing stops the DNS servers; bridges and endpoints stay for the
		// containers that keep running.
		defer nets.Close()
	}
	if f := c.String("wait-boot"); f != "" {
		if err := sysinit.WaitFile(c.Context, f, time.Minute); err != nil {
			log.Warn("the VM's boot is not done; going on", "err", err)
		}
	}
	opts := container.Options{
		Root:    filepath.Join(root, "containers"),
		RunRoot: runRoot,
		Images:  store,
		Logger:  log.With("component", "containers"),
	}
	if nets != nil {
		opts.Network = nets
	}
	mgr, err := container.Open(opts)
	if err != nil {
		return err
	}
	// Closing the manager leaves containers running under their shims; the
	// next serve finds them again.
	defer mgr.Close()

	eng := engine.New(engine.Config{
		Version:       version,
		Commit:        commit,
		KernelVersion: kernelVersion(),
		Images:        store,
		Containers:    mgr,
		Networks:      networkService(nets),
		Host:          hostInfo(root),
		Logger:        log.With("component", "engine"),
	})
	defer eng.Close()

	l, err := listenSocket(c.String("socket"))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: eng, ReadHeaderTimeout: 30 * time.Second}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 3)
	go func() { errc <- srv.Serve(l) }()
	if addr := c.String("ssh-listen"); addr != "" {
		ssrv, sl, err := sshTransport(addr, c.String("ssh-host-key"), c.String("ssh-authorized-keys"), c.String("socket"), log)
		if err != nil {
			return err
		}
		defer ssrv.Close()
		go func() {
			if err := ssrv.Serve(sl); err != nil && !errors.Is(err, sshserver.ErrServerClosed) {
				errc <- fmt.Errorf("ssh transport on %s: %w", addr, err)
			}
		}()
		log.Info("ssh transport serving", "listen", addr)
		if p := c.String("handoff-listen"); p != "" {
			hl, err := sshserver.ListenUnix(p)
			if err != nil {
				return fmt.Errorf("handoff: %w", err)
			}
			go func() {
				if err := ssrv.ServeHandoff(hl); err != nil && !errors.Is(err, sshserver.ErrServerClosed) {
					errc <- fmt.Errorf("handoff on %s: %w", p, err)
				}
			}()
			log.Info("connection handoff serving", "socket", p)
		}
	} else if c.String("handoff-listen") != "" {
		return errors.New("--handoff-listen needs --ssh-listen (the token comes over SSH)")
	}
	log.Info("engine serving", "socket", c.String("socket"), "root", root, "version", version)
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", c.String("socket"), err)
	case <-ctx.Done():
	}
	log.Info("engine shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// networkService is nets as the engine's NetworkService, nil (not a typed
// nil) when networking is off.
func networkService(nets *network.Manager) engine.NetworkService {
	if nets == nil {
		return nil
	}
	return nets
}

// openNetwork opens the network manager when the agent may create bridges
// (see bridgeAllowed); nil means containers get loopback-only namespaces.
func openNetwork(ctx context.Context, root string, force bool, mtu int, log *slog.Logger) *network.Manager {
	sameNS, err := sharesInitNetNS()
	ok, why := bridgeAllowed(force, os.Getpid() == 1 || initIsThisBinary(), sameNS, err, onlyOwnLinks())
	if !ok {
		log.Warn("container networking disabled: containers get a network namespace with loopback only; "+
			"start the agent with --bridge to create bridges and nftables rules in this namespace anyway", "reason", why)
		return nil
	}
	m, err := network.Open(ctx, network.Config{Root: root, MTU: mtu, Logger: log})
	if err != nil {
		log.Error("container networking disabled: containers get a network namespace with loopback only", "err", err)
		return nil
	}
	log.Info("container networking enabled", "reason", why, "state", root)
	return m
}

// bridgeAllowed decides whether the agent may program bridges and nftables:
// when forced, when it is berth's VM init (PID 1, or a child of a PID 1
// running this same binary, as sysinit runs the engine), or when its network namespace
// is not PID 1's (the native driver's fresh namespace). An agent run by hand
// on a host shares the host's namespace and must leave it alone. When PID
// 1's namespace cannot be inspected (a sandbox hiding it), a namespace whose
// only links are loopback and berth's own counts as the agent's.
func bridgeAllowed(force, berthInit, sameNSAsInit bool, nsErr error, ownLinksOnly bool) (bool, string) {
	switch {
	case force:
		return true, "--bridge given"
	case berthInit:
		return true, "the agent is, or runs under, berth's init (PID 1)"
	case nsErr != nil && ownLinksOnly:
		return true, fmt.Sprintf("the namespace has no links but loopback and berth's (PID 1's is not comparable: %v)", nsErr)
	case nsErr != nil:
		return false, fmt.Sprintf("cannot compare the network namespace with PID 1's (%v) and it has links berth did not make", nsErr)
	case sameNSAsInit:
		return false, "the agent shares PID 1's (the host's) network namespace"
	}
	return true, "the agent has a network namespace of its own"
}

// berthLink matches the links the network package makes: loopback, the
// default bridge, user-defined bridges (br-<12 hex>) and veths (veth<11 hex>).
var berthLink = regexp.MustCompile(`^(lo|` + regexp.QuoteMeta(network.DefaultBridgeName) + `|br-[0-9a-f]{12}|veth[0-9a-f]{11})$`)

// onlyOwnLinks reports whether every link of the agent's namespace is
// loopback or one berth makes: a fresh namespace (or one a previous agent
// populated), not a host's.
func onlyOwnLinks() bool {
	links, err := netlink.LinkList()
	if err != nil {
		return false
	}
	for _, l := range links {
		if !berthLink.MatchString(l.Attrs().Name) {
			return false
		}
	}
	return true
}

// initIsThisBinary reports whether PID 1 runs this executable: berth's VM
// init, which starts the engine as its child.
func initIsThisBinary() bool {
	self, err := os.Stat("/proc/self/exe")
	if err != nil {
		return false
	}
	init, err := os.Stat("/proc/1/exe")
	return err == nil && os.SameFile(self, init)
}

// sharesInitNetNS reports whether this process is in PID 1's network
// namespace.
func sharesInitNetNS() (bool, error) {
	self, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return false, err
	}
	init, err := os.Stat("/proc/1/ns/net")
	if err != nil {
		return false, err
	}
	return os.SameFile(self, init), nil
}

func loopbackUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find loopback: %w", err)
	}
	if lo.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bring loopback up: %w", err)
	}
	return nil
}

// preload loads tarball into the store once per root (a marker file
// remembers it), before the engine answers, so that a client seeing the
// agent ready finds the image. A missing tarball is skipped; a failed load
// is logged: the engine is still useful without it.
func preload(ctx context.Context, store *image.Store, root, tarball string, log *slog.Logger) {
	sum := sha256.Sum256([]byte(tarball))
	marker := filepath.Join(root, ".preloaded-"+hex.EncodeToString(sum[:6]))
	if _, err := os.Stat(marker); err == nil {
		return
	}
	f, err := os.Open(tarball)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.Warn("preload: cannot open image tarball", "file", tarball, "err", err)
		}
		return
	}
	defer f.Close()
	imgs, err := store.Load(ctx, f, nil)
	if err != nil {
		log.Warn("preload: image not loaded", "file", tarball, "err", err)
		return
	}
	for _, img := range imgs {
		log.Info("preloaded image", "file", tarball, "id", img.ID, "tags", img.RepoTags)
	}
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		log.Warn("preload: marker", "err", err)
	}
}

// sshTransport sets up the embedded SSH server through which the host
// reaches the engine socket and the containers' ports.
func sshTransport(addr, hostKeyPath, authKeysPath, engineSocket string, log *slog.Logger) (*sshserver.Server, net.Listener, error) {
	if hostKeyPath == "" || authKeysPath == "" {
		return nil, nil, errors.New("--ssh-listen needs --ssh-host-key and --ssh-authorized-keys")
	}
	pem, err := os.ReadFile(hostKeyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read ssh host key: %w", err)
	}
	hostKey, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return nil, nil, fmt.Errorf("parse ssh host key %s: %w", hostKeyPath, err)
	}
	keys, err := readAuthorizedKeys(authKeysPath)
	if err != nil {
		return nil, nil, err
	}
	srv, err := sshserver.New(sshserver.Config{
		HostKey:        hostKey,
		AuthorizedKeys: keys,
		EngineSocket:   engineSocket,
		Logger:         log.With("component", "ssh"),
	})
	if err != nil {
		return nil, nil, err
	}
	kind, rest, _ := strings.Cut(addr, ":")
	var l net.Listener
	switch kind {
	case "unix":
		l, err = sshserver.ListenUnix(rest)
	case "tcp":
		l, err = sshserver.ListenTCP(rest)
	case "vsock":
		var port uint64
		if port, err = strconv.ParseUint(rest, 10, 32); err == nil {
			l, err = sshserver.ListenVsock(uint32(port))
		}
	default:
		err = fmt.Errorf("unknown listen address %q (want unix:PATH, tcp:ADDR or vsock:PORT)", addr)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("ssh transport: %w", err)
	}
	return srv, l, nil
}

func readAuthorizedKeys(path string) ([]ssh.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read authorized keys: %w", err)
	}
	var keys []ssh.PublicKey
	for len(strings.TrimSpace(string(b))) > 0 {
		k, _, _, rest, err := ssh.ParseAuthorizedKey(b)
		if err != nil {
			return nil, fmt.Errorf("parse authorized keys %s: %w", path, err)
		}
		keys = append(keys, k)
		b = rest
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("authorized keys %s: no keys", path)
	}
	return keys, nil
}

// listenSocket listens on a unix socket readable only by its owner, in a
// directory only its owner can enter. A stale socket from a previous run is
// replaced; one that still answers is a running engine and an error.
func listenSocket(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create socket directory %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restrict socket directory %s: %w", dir, err)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
			conn.Close()
			return nil, fmt.Errorf("another engine is already serving on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	old := unix.Umask(0o177)
	l, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("restrict socket %s: %w", path, err)
	}
	return l, nil
}

func kernelVersion() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func hostInfo(root string) engine.HostInfo {
	name, _ := os.Hostname()
	h := sha256.Sum256([]byte(name + "\x00" + root))
	info := engine.HostInfo{
		ID:              strings.ToUpper(hex.EncodeToString(h[:16])),
		Name:            name,
		OperatingSystem: osPrettyName(),
		NCPU:            runtime.NumCPU(),
		RootDir:         root,
		CgroupVersion:   "2",
	}
	if cgroups.Detect() == cgroups.V1 {
		info.CgroupVersion = "1"
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err == nil {
		info.MemTotal = int64(si.Totalram) * int64(si.Unit)
	}
	return info
}

// osPrettyName reads PRETTY_NAME from os-release.
func osPrettyName() string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}
