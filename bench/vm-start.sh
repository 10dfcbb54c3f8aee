#!/usr/bin/env bash
# `berth start` to agent ready, against the same kernel booting a trivial
# /init, and the idle memory of the agent (in the VM) and of the hostagent.
#
# usage: bench/vm-start.sh [RUNS]    (default 5; needs bin/berth and bin/vm/ARCH: make build vmimage)
#
# Each run: a fresh instance in a temporary BERTH_HOME is created once, then
# started and stopped RUNS times (the first start formats nothing: the disk is
# formatted at create). "start" is the wall time of `berth start` (VM boot,
# agent ready over SSH, hostagent and docker.sock up); the trivial-/init
# figure is bench/vm-boot.sh's microvm-pvh variant, run in the same script so
# both see the same machine load.
set -euo pipefail

RUNS=${1:-5}
cd "$(dirname "$0")/.."
REPO=$PWD
ARCH=$(go env GOARCH)
IMG=$REPO/bin/vm/$ARCH
[ -x bin/berth ] && [ -f "$IMG/manifest.json" ] || { echo "vm-start: run 'make build vmimage' first" >&2; exit 1; }

T=$(mktemp -d /tmp/berth-vmstart.XXXXXX)
export BERTH_HOME=$T/home BERTH_VMIMAGE=$IMG
cleanup() {
	set +e
	bin/berth delete -f bench >/dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT

ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:int((a[NR/2]+a[NR/2+1])/2)}'; }

: >"$T/start.ms"
for i in $(seq "$RUNS"); do
	ms bin/berth start bench >>"$T/start.ms"
	if [ "$i" = 1 ]; then
		hpid=$(cat "$BERTH_HOME/bench/hostagent.pid" 2>/dev/null | awk '{print $1}')
		# Idle: let the boot's work settle first.
		sleep 5
		host_rss=$(awk '/^VmRSS/{print int($2/1024)}' "/proc/$hpid/status" 2>/dev/null || echo "?")
		# `berth ssh` joins its arguments into one shell command, as ssh does.
		vm_rss=$(bin/berth --instance bench ssh -- \
			'for s in /proc/[0-9]*/status; do grep -E "^(Name|Pid|VmRSS)" $s | tr "\n" " "; echo; done' 2>/dev/null |
			awk '/VmRSS/ {pid=$4; name=$2; rss=int($6/1024); if (pid==1) printf "PID-1 init %d MiB; ", rss; else if (name=="init") printf "engine %d MiB; ", rss}' || true)
	fi
	bin/berth --instance bench stop >/dev/null 2>&1
done
start_med=$(median <"$T/start.ms")

boot_line=$(bash bench/vm-boot.sh "$IMG" 3 2>/dev/null | awk '$1=="microvm-pvh"{print $2; exit}' || true)
ratio=$(awk -v a="$start_med" -v b="${boot_line:-0}" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "?" }')

out=$(
	printf '| measure | value |\n|---|---|\n'
	printf '| `berth start` → ready, median of %d (ms) | %s (runs: %s) |\n' "$RUNS" "$start_med" "$(tr '\n' ' ' <"$T/start.ms")"
	printf '| trivial /init boot, microvm-pvh median of 3 (ms) | %s |\n' "${boot_line:-?}"
	printf '| ratio (target ≤ 1.2) | %s |\n' "$ratio"
	printf '| idle RSS in the VM | %s |\n' "${vm_rss:-?}"
	printf '| idle RSS of the hostagent | %s MiB |\n' "${host_rss:-?}"
)
echo "$out"
{
	echo
	echo "### vm-start — $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	echo "Command: \`bench/vm-start.sh $RUNS\` (image: $(awk -F'"' '/kernelRelease/{print $4; exit}' "$IMG/manifest.json"), accel: TCG unless KVM works)"
	echo
	echo "$out"
} >>"$REPO/docs/benchmarks.md"
