#!/usr/bin/env bash
# `berth start` to agent ready, against the same kernel booting a trivial
# /init, and the idle memory of the agent (in the VM) and of the hostagent.
#
# usage: bench/vm-start.sh [RUNS]    (default 5; needs bin/berth and bin/vm/ARCH: make build vmimage)
#
# Each run: a fresh instance in a temporary BERTH_HOME is created and started
# once untimed (reported apart as "first start": it also pays one-time costs of
# a new instance, such as writing its initrd and, on a host whose /dev/kvm
# opens but cannot run the guest, the failed KVM attempt), then started and
# stopped RUNS times (no start formats anything: the disk is formatted at
# create). "start" is the wall time of `berth start` (VM boot, agent ready over
# SSH, hostagent and docker.sock up); the trivial-/init figure is
# bench/vm-boot.sh's microvm-pvh variant, run in the same script so both see
# the same machine load.
#
# Idle memory, 5 s after the first timed start: VmRSS and PSS of the VM's PID 1
# (sysinit) and of the engine (the same binary, so most of their text pages are
# shared: their RSS sum counts those twice, their PSS sum once), and the
# hostagent's VmRSS.
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
mib() { awk '{printf "%.1f", $1 / 1024}'; }
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:int((a[NR/2]+a[NR/2+1])/2)}'; }

: >"$T/start.ms"
first=$(ms bin/berth start bench)
bin/berth --instance bench stop >/dev/null 2>&1
for i in $(seq "$RUNS"); do
	ms bin/berth start bench >>"$T/start.ms"
	if [ "$i" = 1 ]; then
		hpid=$(cat "$BERTH_HOME/bench/hostagent.pid" 2>/dev/null | awk '{print $1}')
		# Idle: let the boot's work settle first.
		sleep 5
		host_rss=$(awk '/^VmRSS/{print $2}' "/proc/$hpid/status" 2>/dev/null | mib || echo "?")
		# `berth ssh` joins its arguments into one shell command, as ssh does. One line per agent
		# process (PID 1 and the engine, both named init): pid, VmRSS kB, Pss kB.
		vm_rss=$(bin/berth --instance bench ssh -- \
			'for d in /proc/[0-9]*; do [ "$(sed -n "s/^Name:[[:space:]]*//p" $d/status)" = init ] || continue; echo "${d#/proc/} $(sed -n "s/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p" $d/status) $(sed -n "s/^Pss:[[:space:]]*\([0-9]*\).*/\1/p" $d/smaps_rollup)"; done' 2>/dev/null |
			awk '$1 == 1 {r1 = $2; p1 = $3; next} NF == 3 {re += $2; pe += $3; n++}
				END {if (!r1) exit; printf "PID-1 init %.1f MiB RSS (%.1f PSS); engine %.1f MiB RSS (%.1f PSS)%s; sum %.1f MiB RSS, %.1f MiB PSS",
					r1/1024, p1/1024, re/1024, pe/1024, (n > 1 ? " [" n " processes]" : ""), (r1+re)/1024, (p1+pe)/1024}' || true)
	fi
	bin/berth --instance bench stop >/dev/null 2>&1
done
start_med=$(median <"$T/start.ms")

boot_line=$(BENCH_NO_RECORD=1 bash bench/vm-boot.sh "$IMG" 3 2>/dev/null | awk '$1=="microvm-pvh"{print $2; exit}' || true)
ratio=$(awk -v a="$start_med" -v b="${boot_line:-0}" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "?" }')

out=$(
	printf '| measure | value |\n|---|---|\n'
	printf '| `berth start` → ready, median of %d (ms) | %s (runs: %s) |\n' "$RUNS" "$start_med" "$(tr '\n' ' ' <"$T/start.ms")"
	printf '| first start of the new instance, untimed above (ms) | %s |\n' "$first"
	printf '| trivial /init boot, microvm-pvh median of 3 (ms) | %s |\n' "${boot_line:-?}"
	printf '| ratio (target ≤ 1.2) | %s |\n' "$ratio"
	printf '| idle memory of the agent in the VM (target < 30 MiB) | %s |\n' "${vm_rss:-?}"
	printf '| idle RSS of the hostagent (target < 30 MiB) | %s MiB |\n' "${host_rss:-?}"
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
