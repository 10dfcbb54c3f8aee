//go:build root && linux

package libct

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultCaps is Docker's default capability set.
var defaultCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}

var applets struct {
	once  sync.Once
	names []string
	err   error
}

// busyboxApplets lists the applets of /usr/bin/busybox.
func busyboxApplets(t *testing.T) []string {
	t.Helper()
	applets.once.Do(func() {
		out, err := exec.Command("/usr/bin/busybox", "--list").Output()
		applets.names, applets.err = strings.Fields(string(out)), err
	})
	if applets.err != nil {
		t.Skipf("needs busybox-static at /usr/bin/busybox: %v", applets.err)
	}
	return applets.names
}

// newBundle writes a bundle with a busybox rootfs and a Docker-like spec
// running args; mutate adjusts the spec.
func newBundle(t *testing.T, args []string, mutate func(*specs.Spec)) string {
	t.Helper()
	names := busyboxApplets(t)
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "home/u"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile("/usr/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", n)); err != nil {
			t.Fatal(err)
		}
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000:u:/home/u:/bin/sh\n"
	if err := os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := dockerSpec(args)
	if mutate != nil {
		mutate(spec)
	}
	b, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return bundle
}

func dockerSpec(args []string) *specs.Spec {
	nofile := uint64(1024)
	return &specs.Spec{
		Version: "1.2.0",
		Root:    &specs.Root{Path: "rootfs"},
		Process: &specs.Process{
			Args: args,
			Env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: defaultCaps, Effective: defaultCaps, Permitted: defaultCaps,
			},
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: nofile, Soft: nofile}},
		},
		Hostname: "berthtest",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace}, {Type: specs.CgroupNamespace},
			},
			MaskedPaths: []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
		},
	}
}

// newRuntime returns a Runtime with a temporary root.
func newRuntime(t *testing.T) *Runtime {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	return &Runtime{Root: t.TempDir()}
}

// output collects what a container writes to a pipe.
type output struct {
	r, w *os.File
	done chan struct{}
	buf  bytes.Buffer
}

func newOutput(t *testing.T) *output {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	o := &output{r: r, w: w, done: make(chan struct{})}
	go func() {
		_, _ = io.Copy(&o.buf, r)
		close(o.done)
	}()
	t.Cleanup(func() { r.Close(); w.Close() })
	return o
}

// String waits until every writer closed the pipe.
func (o *output) String() string {
	o.w.Close()
	<-o.done
	return o.buf.String()
}

// createStart creates and starts id with stdout and stderr into one output,
// registering a forced Delete for the end of the test.
func createStart(t *testing.T, rt *Runtime, id, bundle string) (*Process, *output) {
	t.Helper()
	out := newOutput(t)
	ctx := context.Background()
	p, err := rt.Create(ctx, id, bundle, CreateOpts{Stdio: Stdio{Stdout: out.w, Stderr: out.w}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		_ = rt.Delete(context.Background(), id, true)
		_, _ = p.Wait()
	})
	out.w.Close()
	if err := rt.Start(ctx, id); err != nil {
		t.Fatalf("start: %v", err)
	}
	return p, out
}

// waitExit waits for p with a generous bound.
func waitExit(t *testing.T, p *Process) syscall.WaitStatus {
	t.Helper()
	type res struct {
		ws  syscall.WaitStatus
		err error
	}
	ch := make(chan res, 1)
	go func() {
		ws, err := p.Wait()
		ch <- res{ws, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("wait: %v", r.err)
		}
		return r.ws
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		t.Fatalf("process %d did not exit", p.Pid)
	}
	return 0
}
