//go:build lima

package lima

// The opt-in Lima test (make test-lima, which runs platform/lima/internal/tools/test-lima.sh): it boots a real
// Lima VM with QEMU (TCG when there is no KVM) and runs the platform conformance suite against it. limactl
// refuses root, so the script runs the compiled test as a throwaway user. It needs:
//
//	BERTH_LIMACTL     limactl built from the tools module (with ../share/lima/lima-guestagent.Linux-<arch>)
//	BERTH_LIMA_IMAGE  a directory with rootfs.qcow2, vmlinuz and initrd.img (internal/tools/mkimage.sh)
//	BERTH_AGENT       berth-agent for linux/<arch>

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/berth-dev/berth/platform"
	"github.com/berth-dev/berth/platform/platformtest"
)

func TestLimaConformance(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("limactl refuses root: run as an unprivileged user (make test-lima does)")
	}
	limactl, imgDir, agent := os.Getenv("BERTH_LIMACTL"), os.Getenv("BERTH_LIMA_IMAGE"), os.Getenv("BERTH_AGENT")
	if limactl == "" || imgDir == "" || agent == "" {
		t.Skip("set BERTH_LIMACTL, BERTH_LIMA_IMAGE and BERTH_AGENT (see make test-lima)")
	}
	arch := LimaArch(runtime.GOARCH)
	img := Image{
		Location: filepath.Join(imgDir, "rootfs.qcow2"),
		Arch:     arch,
		Kernel:   &Kernel{Location: filepath.Join(imgDir, "vmlinuz"), Cmdline: "root=/dev/vda rw console=ttyS0 net.ifnames=0"},
		Initrd:   &File{Location: filepath.Join(imgDir, "initrd.img")},
	}
	platformtest.Timeout = 40 * time.Minute // two boots under TCG, cloud-init included
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	platformtest.Run(t, func(t *testing.T, inst platform.Instance) platform.Driver {
		d, err := New(inst, Options{
			Limactl: limactl, VMType: VMTypeQEMU, Arch: arch, DiskGiB: 8, Images: []Image{img},
			AgentPath: agent, StartTimeout: 30 * time.Minute, Logger: log,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Preflight(); err != nil {
			t.Fatal(err)
		}
		return startLogger{d, t}
	})
}

// startLogger shows Lima's logs when Start fails (Delete removes them before cleanups could).
type startLogger struct {
	*Driver
	t *testing.T
}

func (s startLogger) Start(ctx context.Context) error {
	err := s.Driver.Start(ctx)
	if err != nil {
		for _, f := range []string{"ha.stderr.log", "serial.log"} {
			if b, rerr := os.ReadFile(filepath.Join(s.opts.LimaHome, s.name, f)); rerr == nil {
				s.t.Logf("%s:\n%s", f, tail(b, 8000))
			}
		}
	}
	return err
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
