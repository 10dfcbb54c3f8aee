#!/bin/sh
# make test-lima: boot a Lima VM with QEMU (TCG without KVM) and run the platform conformance suite against
# the lima driver. Needs root (debootstrap builds the Debian image; limactl refuses root, so the compiled
# test runs as a throwaway user, removed afterwards), qemu-system-<arch>, qemu-img, debootstrap, and access
# to the Go module proxy and a Debian mirror. Work files go to $BERTH_LIMA_WORK (default /var/tmp/berth-lima);
# the image is built once and reused.
set -eu
top=$(cd "$(dirname "$0")/../../../.." && pwd)
work=${BERTH_LIMA_WORK:-/var/tmp/berth-lima}
user=${BERTH_LIMA_USER:-berthlima}
case $(go env GOARCH) in
amd64) limaarch=x86_64 ;;
arm64) limaarch=aarch64 ;;
*) echo "test-lima: unsupported arch $(go env GOARCH)" >&2; exit 1 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
	echo "test-lima: run as root (it creates a throwaway user for limactl)" >&2
	exit 1
fi

mkdir -p "$work/tools/bin" "$work/tools/share/lima"
(
	cd "$top/platform/lima/internal/tools"
	CGO_ENABLED=0 go build -o "$work/tools/bin/limactl" github.com/lima-vm/lima/v2/cmd/limactl
	CGO_ENABLED=0 GOOS=linux go build -o "$work/tools/share/lima/lima-guestagent.Linux-$limaarch" github.com/lima-vm/lima/v2/cmd/lima-guestagent
)
[ -e "$work/image/rootfs.qcow2" ] || "$top/platform/lima/internal/tools/mkimage.sh" "$work/image"
rm -rf "$work/image/rootfs" # only the disk image, kernel and initrd are needed
(
	cd "$top"
	CGO_ENABLED=0 GOOS=linux go build -trimpath -o "$work/berth-agent" ./cmd/berth-agent
	go test -c -tags lima -o "$work/lima.test" ./platform/lima/
)
chmod -R a+rX "$work"

created=0
if ! id -u "$user" >/dev/null 2>&1; then
	useradd --create-home --shell /bin/sh "$user"
	created=1
fi
if [ -e /dev/kvm ] && getent group kvm >/dev/null; then
	usermod -a -G kvm "$user"
fi
cleanup() {
	if [ "$created" = 1 ]; then
		userdel -r "$user" 2>/dev/null || true
	fi
}
trap cleanup EXIT
# Lima uses KVM whenever /dev/kvm exists; when the user cannot open it, run QEMU through the TCG wrapper.
qemuenv=
if [ -e /dev/kvm ] && ! runuser -u "$user" -- sh -c 'test -r /dev/kvm && test -w /dev/kvm'; then
	qarch=$limaarch
	cp "$top/platform/lima/internal/tools/qemu-tcg.sh" "$work/tools/bin/qemu-tcg"
	chmod 755 "$work/tools/bin/qemu-tcg"
	qemuenv="QEMU_SYSTEM_$(echo "$qarch" | tr a-z A-Z)=$work/tools/bin/qemu-tcg BERTH_REAL_QEMU=$(command -v "qemu-system-$qarch")"
fi
home=$(getent passwd "$user" | cut -d: -f6)
cd "$home"
runuser -u "$user" -- mkdir -p "$home/tmp" # the user's own TMPDIR: /tmp need not be world-writable
# shellcheck disable=SC2086 # $qemuenv is a list of VAR=value words
runuser -u "$user" -- env -i HOME="$home" TMPDIR="$home/tmp" PATH=/usr/local/bin:/usr/bin:/bin USER="$user" $qemuenv \
	BERTH_LIMACTL="$work/tools/bin/limactl" BERTH_LIMA_IMAGE="$work/image" BERTH_AGENT="$work/berth-agent" \
	"$work/lima.test" -test.v -test.run TestLimaConformance -test.timeout 100m "$@"
