#!/usr/bin/env bash
# oci-start.sh BINARY — container start latency: the wall time of `RUNTIME run` of /bin/true from one busybox-static
# bundle, for `BINARY oci run` (berth-agent), `runc run` and `crun run`, alternating (A B C A B C …) so that
# drift in the machine's state hits every runtime alike. Prints median and p90 per runtime and appends them,
# with the date, the machine and the exact command, to docs/benchmarks.md.
#
# crun 1.8 refuses this host's hybrid cgroup layout (an empty cgroup2 mounted at /sys/fs/cgroup/unified:
# "cgroups in hybrid mode not supported"). It runs in a private mount namespace where that mount is
# unmounted — never on the host: one holder process (`unshare --mount --propagation private`) unmounts it in
# its own namespace and sleeps, and each crun run enters it with `nsenter --mount`. The cost of that
# nsenter is measured too (row "nsenter-overhead") and is included in crun's figures.
#
# Environment: BENCH_RUNS (default 20 runs per runtime), BENCH_WARMUP (default 2, not counted),
# BENCH_RUNTIMES (default "berth runc crun"), BENCH_NO_RECORD=1 to not append to docs/benchmarks.md.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 BINARY   (BINARY: berth-agent; '-' measures only runc and crun)" >&2; exit 2; }
BINARY=$1
[ "$(id -u)" = 0 ] || { echo "$0: needs root (it runs containers); run it with sudo" >&2; exit 1; }
RUNS=${BENCH_RUNS:-20}
WARMUP=${BENCH_WARMUP:-2}
RUNTIMES=${BENCH_RUNTIMES:-berth runc crun}
if [ "$BINARY" = - ]; then
	RUNTIMES=$(echo "$RUNTIMES" | tr ' ' '\n' | grep -vx berth | tr '\n' ' ')
else
	BINARY=$(realpath "$BINARY")
fi
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUSYBOX=$(command -v busybox) || { echo "$0: busybox not found (install busybox-static)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/berth-bench-oci.XXXXXX)
HOLDER=
cleanup() {
	set +e
	local rt id
	for rt in $RUNTIMES; do
		[ -d "$WORK/root-$rt" ] || continue
		for id in $(run_rt "$rt" list -q 2>/dev/null); do run_rt "$rt" delete --force "$id" >/dev/null 2>&1; done
	done
	[ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null && wait "$HOLDER" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_rt RUNTIME ARGS…: the runtime's command line with its own state directory.
run_rt() {
	local rt=$1
	shift
	case $rt in
	berth) "$BINARY" oci --root "$WORK/root-berth" "$@" ;;
	runc) runc --root "$WORK/root-runc" "$@" ;;
	crun) nsenter --target "$HOLDER" --mount crun --root "$WORK/root-crun" "$@" ;;
	nsenter-overhead) nsenter --target "$HOLDER" --mount /bin/true ;;
	process) /bin/true ;;
	esac
}

# The bundle: busybox-static, and runc's default spec running /bin/true without a terminal.
bundle=$WORK/bundle
mkdir -p "$bundle/rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,dev,proc,sys,tmp,root}
cp "$BUSYBOX" "$bundle/rootfs/bin/busybox"
chroot "$bundle/rootfs" /bin/busybox --install -s
(cd "$bundle" && runc spec)
sed -i -e 's/"terminal": true/"terminal": false/' -e 's|^\([[:space:]]*\)"sh"$|\1"/bin/true"|' "$bundle/config.json"
grep -q '"/bin/true"' "$bundle/config.json" || { echo "$0: could not set args in runc's spec" >&2; exit 1; }

series=$RUNTIMES
if [[ " $RUNTIMES " == *" crun "* ]]; then
	command -v crun >/dev/null || { echo "$0: crun not found" >&2; exit 1; }
	unshare --mount --propagation private sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec sleep 86400' &
	HOLDER=$!
	# Wait until the holder's namespace no longer shows the cgroup2 mount.
	for _ in $(seq 100); do
		nsenter --target "$HOLDER" --mount grep -q ' /sys/fs/cgroup/unified ' /proc/self/mountinfo 2>/dev/null || break
		sleep 0.05
	done
	series="$series nsenter-overhead"
fi
series="$series process"
for rt in $series; do mkdir -p "$WORK/root-$rt"; : >"$WORK/$rt.ms"; done

# One timed run; $EPOCHREALTIME costs no fork.
timed() {
	local rt=$1 id=$2 t0 t1 rc=0
	t0=$EPOCHREALTIME
	run_rt "$rt" run --bundle "$bundle" "$id" </dev/null >/dev/null 2>"$WORK/err" || rc=$?
	t1=$EPOCHREALTIME
	if [ "$rc" != 0 ]; then
		echo "$0: $rt run failed (exit $rc):" >&2
		cat "$WORK/err" >&2
		exit 1
	fi
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) * 1000 }'
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "runs: $RUNS per runtime (+$WARMUP warm-up), alternating: $series" >&2
for ((i = 1 - WARMUP; i <= RUNS; i++)); do
	for rt in $series; do
		ms=$(timed "$rt" "bench-$rt-$((i + WARMUP))")
		[ "$i" -ge 1 ] && echo "$ms" >>"$WORK/$rt.ms"
	done
done

# summarize FILE: median and p90 (nearest rank) of the numbers in FILE.
summarize() {
	sort -n "$1" | awk '{ v[NR] = $1 } END {
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		r = int(0.9 * NR); if (r < 0.9 * NR) r++
		printf "%.1f %.1f %.1f %.1f\n", m, v[r], v[1], v[NR] }'
}

version_of() {
	case $1 in
	berth) "$BINARY" --version 2>/dev/null | head -1 ;;
	runc) runc --version | head -1 ;;
	crun) crun --version | head -1 ;;
	nsenter-overhead) echo "nsenter into crun's mount namespace, running /bin/true (included in crun's figures)" ;;
	process) echo "fork+exec of /bin/true from bash (baseline)" ;;
	esac
}

table=$(
	printf '| runtime | median ms | p90 ms | min ms | max ms | version |\n| --- | ---: | ---: | ---: | ---: | --- |\n'
	for rt in $series; do
		read -r med p90 min max < <(summarize "$WORK/$rt.ms")
		printf '| %s | %s | %s | %s | %s | %s |\n' "$rt" "$med" "$p90" "$min" "$max" "$(version_of "$rt")"
	done
)
echo "$table"

if [ "${BENCH_NO_RECORD:-}" != 1 ]; then
	cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
	{
		echo
		echo "### oci-start — $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo
		echo "Machine: $(uname -srm), $(nproc) cores ($cpu), $(. /etc/os-release && echo "$PRETTY_NAME");" \
			"load average before/after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)."
		echo "Command: \`bench/oci-start.sh ${BINARY/#$REPO\//}\` (BENCH_RUNS=$RUNS, BENCH_WARMUP=$WARMUP, runtimes: $series)."
		echo
		echo "$table"
	} >>"$REPO/docs/benchmarks.md"
	echo "appended to docs/benchmarks.md" >&2
fi
