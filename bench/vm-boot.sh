#!/usr/bin/env bash
# VM boot time under QEMU (TCG here): time from QEMU start to a marker that
# /init prints on the serial console, for the kernel of berth's VM image
# booted four ways, plus a check that every module of the image's load lists
# loads.
#
# usage: bench/vm-boot.sh [IMAGE_DIR] [RUNS]
#   IMAGE_DIR  an amd64 image from `berth-vmimage build` (default: built into
#              /tmp/berth-vm-amd64 when missing)      RUNS  default 5 each
#
# Variants (same kernel, same command line apart from tsc_early_khz):
#   microvm-pvh      -M microvm, -kernel vmlinux (PVH entry), tsc_early_khz, trivial /init
#   microvm-pvh-notsc  the same without tsc_early_khz
#   pc-bzimage       -M pc, -kernel bzImage, tsc_early_khz, trivial /init
#   microvm-pvh-full microvm-pvh with the image's full initramfs (agent,
#                    busybox, modules, demo image) and the trivial /init
#                    appended over it: the cost of unpacking berth's initramfs
# The trivial /init is a static Go program that prints the marker and
# reboots (reboot=t + -no-reboot make QEMU exit).
# Prints the table and appends it, with the date, the machine and the command,
# to docs/benchmarks.md (BENCH_NO_RECORD=1: do not append).
# Needs qemu-system-x86 (apt-get install qemu-system-x86) and Go; no root.
set -euo pipefail
cd "$(dirname "$0")/.."
IMG=${1:-/tmp/berth-vm-amd64}
RUNS=${2:-5}
QEMU=${QEMU:-qemu-system-x86_64}
TIMEOUT=${TIMEOUT:-60} # seconds before a boot counts as hung
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
command -v "$QEMU" >/dev/null || { echo "vm-boot: needs $QEMU (apt-get install qemu-system-x86)" >&2; exit 1; }

T=$(mktemp -d /tmp/berth-vmboot.XXXXXX)
trap 'rm -rf "$T"' EXIT
go build -o "$T/berth-vmimage" ./cmd/berth-vmimage
V="$T/berth-vmimage"
if [ ! -f "$IMG/manifest.json" ]; then
	"$V" build --arch amd64 --out "$IMG"
fi
"$V" verify "$IMG" >&2

KHZ=$(awk -F: '/^cpu MHz/{printf "%d", $2*1000; exit}' /proc/cpuinfo)
BASE="$IMG/$(sed -n 's/.*"initramfs": "\(.*\)".*/\1/p' "$IMG/manifest.json" | head -1)"

# trivial /init
mkdir -p "$T/triv"
cat >"$T/triv/main.go" <<'GO'
package main

import (
	"os"
	"syscall"
)

func main() {
	os.Stdout.WriteString("BERTH-BOOT-MARKER\n")
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_RESTART)
	select {}
}
GO
printf 'module triv\ngo 1.21\n' >"$T/triv/go.mod"
(cd "$T/triv" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -o init .)
"$V" pack --out "$T/triv.cpio.gz" init="$T/triv/init"
"$V" concat --out "$T/full.cpio" "$BASE" "$T/triv.cpio.gz"

# module check /init: insmod every module of the load lists in order (boot stage, then the later stages
# of images that have them)
cat >"$T/modcheck.sh" <<'SH'
#!/bin/sh
ok=0; fail=0
for l in berth berth-network berth-background berth-late; do
	[ -f /lib/modules/$l.load ] || continue
	while read -r m; do
		if out=$(insmod "$m" 2>&1); then ok=$((ok+1)); else fail=$((fail+1)); echo "MODFAIL $m: $out"; fi
	done < /lib/modules/$l.load
done
echo "MODCHECK ok=$ok fail=$fail"
mount -t proc proc /proc; mount -t sysfs sys /sys
echo "VIRTIO $(ls /sys/bus/virtio/devices | tr '\n' ' ')NET $(ls /sys/class/net | tr '\n' ' ')"
[ -f /etc/berth/instance.json ] && echo "INSTANCE $(tr -d ' \n' < /etc/berth/instance.json)"
for f in /etc/berth/*; do echo "FILE $(stat -c '%a %n' "$f")"; done
echo BERTH-BOOT-MARKER
reboot -f
SH
chmod 0755 "$T/modcheck.sh"
"$V" pack --out "$T/modcheck.cpio.gz" init="$T/modcheck.sh"
ssh-keygen -q -t ed25519 -N '' -f "$T/hostkey" >/dev/null 2>&1 || printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n' >"$T/hostkey"
echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBERTHBERTHBERTHBERTHBERTHBERTHBERTHBERTHBERTH bench" >"$T/auth"
"$V" instance --out "$T/inst.cpio.gz" --host-key "$T/hostkey" --authorized-key "$T/auth" --share home:9p:/home --cpus 1 --memory 512
"$V" concat --out "$T/modcheck.cpio" "$BASE" "$T/modcheck.cpio.gz" "$T/inst.cpio.gz"

CMD="console=ttyS0 reboot=t panic=-1 quiet"
MICROVM="-M microvm,x-option-roms=off,isa-serial=on"
common=(-m 512 -smp 1 -nodefaults -no-user-config -nographic -no-reboot -serial stdio)

# boot NAME MACHINE KERNEL INITRD APPEND → prints ms to marker (or FAIL)
boot() {
	local start line now
	start=$(date +%s%N)
	while IFS= read -r line; do
		case $line in *BERTH-BOOT-MARKER*) now=$(date +%s%N); echo $(((now - start) / 1000000)); return 0 ;; esac
	done < <(timeout "$TIMEOUT" "$QEMU" $2 "${common[@]}" -kernel "$3" -initrd "$4" -append "$5" 2>&1)
	echo FAIL
}

declare -A R
names=(microvm-pvh microvm-pvh-notsc pc-bzimage microvm-pvh-full)
run_one() {
	case $1 in
	microvm-pvh) boot "$1" "$MICROVM" "$IMG/vmlinux" "$T/triv.cpio.gz" "$CMD tsc_early_khz=$KHZ" ;;
	microvm-pvh-notsc) boot "$1" "$MICROVM" "$IMG/vmlinux" "$T/triv.cpio.gz" "$CMD" ;;
	pc-bzimage) boot "$1" "-M pc" "$IMG/bzImage" "$T/triv.cpio.gz" "$CMD tsc_early_khz=$KHZ" ;;
	microvm-pvh-full) boot "$1" "$MICROVM" "$IMG/vmlinux" "$T/full.cpio" "$CMD tsc_early_khz=$KHZ" ;;
	esac
}
for n in "${names[@]}"; do run_one "$n" >/dev/null; done # warm-up (page cache)
for i in $(seq "$RUNS"); do
	for n in "${names[@]}"; do R[$n]+="$(run_one "$n") "; done
done

# median/min/max over the boots that reached the marker; "hung": no marker within TIMEOUT s
stats() {
	tr ' ' '\n' | grep -v '^$' | sort -n | awk '
		/FAIL/ {h++; next} {a[++n]=$1}
		END {if (n == 0) {printf "%8s %8s %8s %5d", "-", "-", "-", h; exit}
		     m = (n % 2) ? a[(n+1)/2] : (a[n/2]+a[n/2+1])/2; printf "%8d %8d %8d %5d", m, a[1], a[n], h}'
}
table=$(
	printf '%-20s %8s %8s %8s %5s  (ms from QEMU start to /init marker, %d runs, hung = none within %d s)\n' \
		variant median min max hung "$RUNS" "$TIMEOUT"
	for n in "${names[@]}"; do printf '%-20s %s\n' "$n" "$(stats <<<"${R[$n]}")"; done
	printf 'sizes: vmlinux %s, bzImage %s, initramfs %s bytes; kernel %s; host TSC %s kHz; %s\n' \
		"$(stat -c %s "$IMG/vmlinux")" "$(stat -c %s "$IMG/bzImage")" "$(stat -c %s "$BASE")" \
		"$(sed -n 's/.*"kernelRelease": "\(.*\)".*/\1/p' "$IMG/manifest.json")" "$KHZ" "$("$QEMU" --version | head -1)"
	echo "module check (microvm + virtio-net/rng over virtio-mmio; base initramfs + modcheck /init + instance cpio):"
	timeout 180 "$QEMU" $MICROVM "${common[@]}" -kernel "$IMG/vmlinux" -initrd "$T/modcheck.cpio" \
		-device virtio-net-device,netdev=n0 -netdev user,id=n0 -device virtio-rng-device \
		-append "$CMD tsc_early_khz=$KHZ" 2>&1 | grep -E '^(MODFAIL|MODCHECK|VIRTIO|INSTANCE|FILE)' | cut -c1-200 || true
)
echo "$table"

if [ "${BENCH_NO_RECORD:-}" != 1 ]; then
	cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
	{
		echo
		echo "### vm-boot — $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo
		echo "Machine: $(uname -srm), $(nproc) cores ($cpu), $(. /etc/os-release && echo "$PRETTY_NAME"), TCG;" \
			"load average before/after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)."
		echo "Command: \`bench/vm-boot.sh $IMG $RUNS\` (TIMEOUT=$TIMEOUT)."
		echo
		echo '```'
		echo "$table"
		echo '```'
	} >>docs/benchmarks.md
	echo "appended to docs/benchmarks.md" >&2
fi
