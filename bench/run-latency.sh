#!/usr/bin/env bash
# End-to-end `run --rm IMAGE true` latency: berth (CLI → engine API →
# runtime) against docker on dockerd, same image, same machine, alternating.
#
# usage: sudo bench/run-latency.sh [RUNS]     (default 20 counted runs each)
#
# Both engines run in network and mount namespaces of their own (unshare), so
# neither touches the host's network or mount table; dockerd runs with
# --bridge=none/--iptables=false and its cgroups under berth-bench-docker,
# removed afterwards. Needs root, Debian's docker.io (dockerd), busybox-static.
set -euo pipefail

RUNS=${1:-20}
WARMUP=2
cd "$(dirname "$0")/.."
REPO=$PWD

[ "$(id -u)" = 0 ] || { echo "run-latency: needs root (runs two container engines)" >&2; exit 1; }
command -v dockerd >/dev/null || { echo "run-latency: needs dockerd (apt-get install docker.io)" >&2; exit 1; }
DOCKER=$(command -v docker)

T=$(mktemp -d /tmp/berth-bench.XXXXXX)
BERTH_PID= DOCKERD_PID=
cleanup() {
	local rc=$?
	set +e
	if [ "$rc" != 0 ]; then
		for f in "$T/berth.log" "$T/dockerd.log"; do [ -s "$f" ] && { echo "--- $f" >&2; tail -20 "$f" >&2; }; done
	fi
	[ -n "$BERTH_PID" ] && kill "$BERTH_PID" 2>/dev/null && wait "$BERTH_PID" 2>/dev/null
	[ -n "$DOCKERD_PID" ] && kill "$DOCKERD_PID" 2>/dev/null && wait "$DOCKERD_PID" 2>/dev/null
	for d in /sys/fs/cgroup/*/berth-bench-docker /sys/fs/cgroup/berth-bench-docker; do
		[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT

echo "building berth …" >&2
go build -o "$T/berth" ./cmd/berth
CGO_ENABLED=0 go build -o "$T/berth-agent" ./cmd/berth-agent
go run ./bench/mkimage -o "$T/busybox.tar" -t bench/busybox:1

wait_sock() { for _ in $(seq 300); do [ -S "$1" ] && return 0; sleep 0.1; done; echo "run-latency: $1 did not appear" >&2; return 1; }

unshare --net --mount --propagation private -- \
	"$T/berth-agent" serve --socket "$T/berth-sock/docker.sock" --root "$T/berth-root" --run-root "$T/berth-run" \
	>"$T/berth.log" 2>&1 &
BERTH_PID=$!
unshare --net --mount --propagation private -- \
	dockerd --data-root "$T/docker-root" --exec-root "$T/docker-exec" -H "unix://$T/docker.sock" \
	--pidfile "$T/dockerd.pid" --bridge=none --iptables=false --ip-masq=false --ip-forward=false \
	--userland-proxy=false --cgroup-parent=/berth-bench-docker --log-level=error \
	>"$T/dockerd.log" 2>&1 &
DOCKERD_PID=$!
wait_sock "$T/berth-sock/docker.sock"
wait_sock "$T/docker.sock"

B=("$T/berth" --host "unix://$T/berth-sock/docker.sock")
D=("$DOCKER" -H "unix://$T/docker.sock")
"${B[@]}" load -q -i "$T/busybox.tar" >/dev/null
"${D[@]}" load -q -i "$T/busybox.tar" >/dev/null

ms() { # ms CMD… → prints the wall time of CMD in ms (3 decimals)
	local s e
	s=$(date +%s%N)
	"$@" >/dev/null
	e=$(date +%s%N)
	awk -v n=$((e - s)) 'BEGIN{printf "%.3f\n", n/1e6}'
}

: >"$T/berth.ms"
: >"$T/docker.ms"
for i in $(seq $((RUNS + WARMUP))); do
	b=$(ms "${B[@]}" run --rm --network none bench/busybox:1 true)
	d=$(ms "${D[@]}" run --rm --network none bench/busybox:1 true)
	if [ "$i" -gt "$WARMUP" ]; then
		echo "$b" >>"$T/berth.ms"
		echo "$d" >>"$T/docker.ms"
	fi
done

stats() { # median p90 min max of a file of numbers
	sort -n "$1" | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; p=a[int(NR*0.9+0.999)]; printf "%.1f %.1f %.1f %.1f", m, p, a[1], a[NR]}'
}
read -r bm bp bmin bmax <<<"$(stats "$T/berth.ms")"
read -r dm dp dmin dmax <<<"$(stats "$T/docker.ms")"
ratio=$(awk -v b="$bm" -v d="$dm" 'BEGIN{printf "%.3f", b/d}')

dv=$("${D[@]}" version --format '{{.Server.Version}}' 2>/dev/null || echo "?")
table=$(
	printf '| engine | median ms | p90 ms | min ms | max ms |\n|---|---|---|---|---|\n'
	printf '| berth (`berth run --rm`) | %s | %s | %s | %s |\n' "$bm" "$bp" "$bmin" "$bmax"
	printf '| docker %s (`docker run --rm`) | %s | %s | %s | %s |\n' "$dv" "$dm" "$dp" "$dmin" "$dmax"
)
echo "$table"
echo "berth/docker median ratio: $ratio (target ≤ 0.25)"

{
	echo
	echo "### run-latency, $(date -u +%Y-%m-%d) — $(nproc) cores, $(uname -r), $RUNS runs each (+$WARMUP warm-up), alternating"
	echo
	echo "Command: \`sudo bench/run-latency.sh $RUNS\`"
	echo
	echo "$table"
	echo
	echo "berth/docker median ratio: **$ratio** (target ≤ 0.25)."
} >>"$REPO/docs/benchmarks.md"
