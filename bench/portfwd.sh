#!/usr/bin/env bash
# portfwd.sh [ROUNDS] [BYTES] — throughput of a berth forwarded port against direct loopback, a plain Go
# io.Copy relay and OpenSSH `ssh -L`, in one run, on 127.0.0.1 only.
#
# One Go sender (bench/tcpbench send) writes BYTES to a Go sink (tcpbench sink), half-closes and stops its
# clock when the sink answers the byte count it received, so nothing still buffered is counted. Paths:
#   loopback  sender → sink on the host
#   relay     sender → tcpbench relay (io.Copy both ways) → sink on the host
#   relay-berth  the same with berth's relay code (sshwire.Relay: the agent's relay of handed-off sockets)
#   berth     sender → 127.0.0.1:P published by `berth start --driver native`; the hostagent accepts and
#             hands the socket to the agent (SCM_RIGHTS over <instance>/agent.handoff, authorised by a token
#             from the SSH link), and the agent splices it to its connection to the container (bridge
#             network) → sink inside the container. With BERTH_NO_HANDOFF=1 in the environment the hostagent
#             carries it over SSH instead (direct-tcpip over the instance's unix socket), as for a VM.
#   berth-hostnet  the same into a --network host container (the agent's own namespace: no veth/bridge)
#   ssh-L     sender → `ssh -N -L` (aes128-gcm@openssh.com) → sshd on 127.0.0.1 → sink on the host
# ROUNDS (default 5) rounds alternate the paths (A B C D A B C D …) after one 256 MiB warm-up each; the
# table gives median/min/max Gbit/s, the median's ratio to loopback and CPU seconds per GiB of the
# processes on each path (from /proc/<pid>/stat; the sender's from bash's `time`); a second table gives
# read/write system calls (/proc/<pid>/io) and context switches (/proc/<pid>/task/*/status) per MiB and
# with BENCH_GCTRACE=1 berth's garbage collections per GiB (berth started with GODEBUG=gctrace=1).
#
# sshd: /usr/sbin/sshd when installed, else the Debian package is fetched with `apt-get download` and
# unpacked into the temporary directory (never installed: no /etc/ssh, no system service). It runs as root
# in a private mount namespace (unshare) that adds the privilege-separation user and /run/sshd and unlocks
# `nobody` (the forwarding login) in bind-mounted copies of /etc/passwd and /etc/shadow; the host's files
# are not changed. Throwaway host and client keys, its own config, a random port, killed by PID.
#
# Environment: BERTH_NO_HANDOFF=1 (see above); BENCH_NO_RECORD=1 to not append to docs/benchmarks.md; BENCH_GCTRACE=1 (see above).
# Needs root, Go, docker (CLI only), ssh/ssh-keygen (openssh-client), iproute2 (ss).
set -euo pipefail

ROUNDS=${1:-5}
BYTES=${2:-$((2 << 30))}
WARM=$((256 << 20))
[ "$(id -u)" = 0 ] || { echo "$0: needs root (berth's native driver); run it with sudo" >&2; exit 1; }
for c in go docker ssh ssh-keygen ss unshare; do
	command -v "$c" >/dev/null || { echo "$0: $c not found" >&2; exit 1; }
done
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
HZ=$(getconf CLK_TCK)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

T=$(mktemp -d /tmp/berth-bench-portfwd.XXXXXX)
export BERTH_HOME=$T/home DOCKER_CONFIG=$T/docker-config
GIVEN=
PIDS=() # background processes started here, killed by PID
BERTH_STARTED=
cleanup() {
	local rc=$? p i
	set +e
	if [ "$rc" != 0 ]; then
		for f in "$BERTH_HOME/default/hostagent.log" "$BERTH_HOME/default/agent.log" "$T/sshd.log"; do
			[ -s "$f" ] && { echo "--- $f" >&2; tail -15 "$f" >&2; }
		done
	fi
	# Newest first: the ssh client goes before sshd, so sshd reaps its per-connection children itself (an
	# orphan would be left to PID 1, which need not reap).
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		p=${PIDS[i]}
		if [ "$p" = "${SSHD_PID:-}" ]; then
			for _ in $(seq 50); do [ -z "$(ps -o pid= --ppid "$p")" ] && break; sleep 0.1; done
		fi
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	[ -n "$BERTH_STARTED" ] && "$T/bin/berth" delete -f >/dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT

freeport() { # PORT= a TCP port below the ephemeral range that no socket uses (a listener would fail to bind a
	# port that an outgoing connection holds) and that this script has not handed out yet
	local p lo
	lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
	while :; do
		p=$((10000 + RANDOM % (lo - 10000)))
		case " $GIVEN " in *" $p "*) continue ;; esac
		[ -z "$(ss -Htan "sport = :$p")" ] && { GIVEN+=" $p"; PORT=$p; return; }
	done
}
# shellcheck disable=SC2086 # word splitting of /proc fields is intended
ticks() { # ticks PID… → "UTIME STIME SYSCR SYSCW CTXSW" summed over the processes: CPU clock ticks from
	# /proc/PID/stat, read and write system calls from /proc/PID/io, context switches (voluntary and not)
	# of all threads from /proc/PID/task/*/status (a gone process or thread counts 0)
	local p st u=0 k=0 r=0 w=0 c=0
	for p in "$@"; do
		st=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
		set -- $st
		u=$((u + ${12}))
		k=$((k + ${13}))
		st=$(awk '/^syscr/{r=$2} /^syscw/{w=$2} END{print r+0, w+0}' "/proc/$p/io" 2>/dev/null) || continue
		set -- $st
		r=$((r + $1))
		w=$((w + $2))
		c=$((c + $(cat /proc/"$p"/task/*/status 2>/dev/null | awk '/ctxt_switches/{s+=$2} END{print s+0}')))
	done
	echo "$u $k $r $w $c"
}
descendants() { # descendants PID → PID and all its descendants
	local p
	echo "$1"
	for p in $(ps -o pid= --ppid "$1"); do descendants "$p"; done
}
waitport() { # waitport ADDR — until a 1-byte transfer through ADDR succeeds (30 s)
	local i
	for i in $(seq 300); do
		"$T/tcpbench" send -c "$1" -n 1 >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "$0: nothing answers through $1" >&2
	return 1
}

echo "building berth, berth-agent, tcpbench and the busybox image …" >&2
go build -o "$T/bin/berth" ./cmd/berth
CGO_ENABLED=0 go build -o "$T/bin/berth-agent" ./cmd/berth-agent
CGO_ENABLED=0 go build -o "$T/tcpbench" ./bench/tcpbench
go run ./bench/mkimage -o "$T/busybox.tar" -t bench/busybox:1

# --- host sink and io.Copy relay
freeport
SINK=127.0.0.1:$PORT
"$T/tcpbench" sink -l "$SINK" >/dev/null &
PIDS+=($!)
SINK_PID=$!
freeport
RELAY=127.0.0.1:$PORT
"$T/tcpbench" relay -l "$RELAY" -to "$SINK" >/dev/null &
PIDS+=($!)
RELAY_PID=$!
freeport
BRELAY=127.0.0.1:$PORT
"$T/tcpbench" relay -berth -l "$BRELAY" -to "$SINK" >/dev/null &
PIDS+=($!)
BRELAY_PID=$!

# --- berth: native instance, sink in a container, published on 127.0.0.1
echo "starting berth (native) …" >&2
BERTH_STARTED=1
# BENCH_GCTRACE=1: one line per garbage collection in agent.log and hostagent.log, counted per GiB below.
# Off by default: the runtime prints each line with dozens of small write(2)s (≈16 per MiB in the agent).
GODEBUG=${BENCH_GCTRACE:+gctrace=1} "$T/bin/berth" start --driver native >"$T/berth-start.log" 2>&1 || { cat "$T/berth-start.log" >&2; exit 1; }
D=(docker -H "unix://$BERTH_HOME/default/docker.sock")
"${D[@]}" load -q -i "$T/busybox.tar" >/dev/null
freeport
BPORT=$PORT
SINKCMD='while [ ! -x /tmp/tcpbench ]; do sleep 0.1; done; exec /tmp/tcpbench sink -l 0.0.0.0:5001'
CID=$("${D[@]}" run -d -p "127.0.0.1:$BPORT:5001" bench/busybox:1 sh -c "$SINKCMD")
CNET=$("${D[@]}" inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$CID")
BERTH_NET=bridge
case $CNET in *.*.*.*) ;; *)
	# The agent may decline container networking in its namespace ("links berth did not make"); then the
	# container shares the agent's network namespace and the agent dials 127.0.0.1:5001 there.
	echo "container has no IP (agent log: $(grep -o 'container networking [a-z]*' "$BERTH_HOME/default/agent.log" | head -1)); using --network host" >&2
	"${D[@]}" rm -f "$CID" >/dev/null
	BERTH_NET=host
	CNET=
	CID=$("${D[@]}" run -d --network host -p "127.0.0.1:$BPORT:5001" bench/busybox:1 sh -c "$SINKCMD")
	;;
esac
# Into /tmp: berth refuses `docker cp FILE CID:/NAME` ("extraction point is not a directory: /").
"${D[@]}" cp "$T/tcpbench" "$CID:/tmp"
BERTH=127.0.0.1:$BPORT
# The same path without the container bridge (veth): a host-network container, i.e. the agent's own
# network namespace, where the agent dials 127.0.0.1.
BERTHHOST=
if [ "$BERTH_NET" = bridge ]; then
	freeport
	HCID=$("${D[@]}" run -d --network host -p "127.0.0.1:$PORT:5002" bench/busybox:1 \
		sh -c "${SINKCMD/0.0.0.0:5001/0.0.0.0:5002}")
	"${D[@]}" cp "$T/tcpbench" "$HCID:/tmp"
	BERTHHOST=127.0.0.1:$PORT
fi
HA_PID=$(cut -d' ' -f1 "$BERTH_HOME/default/hostagent.pid")
AG_PID=$(cut -d' ' -f1 "$BERTH_HOME/default/agent.pid")
waitport "$BERTH"
[ -n "$BERTHHOST" ] && waitport "$BERTHHOST"
CSINK_PID=''
HSINK_PID=''
for p in $(descendants "$AG_PID"); do
	case $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) in
	*"sink -l 0.0.0.0:5001"*) CSINK_PID=$p ;;
	*"sink -l 0.0.0.0:5002"*) HSINK_PID=$p ;;
	esac
done

# --- ssh -L: private sshd on 127.0.0.1
SSHD=$(command -v sshd || true)
[ -z "$SSHD" ] && [ -x /usr/sbin/sshd ] && SSHD=/usr/sbin/sshd
SSHD_LIBS=
if [ -z "$SSHD" ]; then
	echo "fetching openssh-server with apt-get download (unpacked into $T, not installed) …" >&2
	mkdir -p "$T/pkg"
	(cd "$T/pkg" && apt-get download -q openssh-server 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 &&
		dpkg-deb -x openssh-server_*.deb "$T/pkg/root")
	SSHD=$T/pkg/root/usr/sbin/sshd
	if ldd "$SSHD" | grep 'libwrap.*not found' >/dev/null; then
		(cd "$T/pkg" && apt-get download -q libwrap0 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 &&
			dpkg-deb -x libwrap0_*.deb "$T/pkg/root")
	fi
	SSHD_LIBS=$T/pkg/root/usr/lib/$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
	[ -d "$SSHD_LIBS" ] || SSHD_LIBS=$(dirname "$(find "$T/pkg/root" -name 'libwrap.so.0' | head -1)")
fi
S=$T/ssh
mkdir -p "$S"
chmod 711 "$T" "$S" # sshd reads authorized_keys as the logged-in user (nobody)
ssh-keygen -q -t ed25519 -N '' -f "$S/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$S/client_key"
cp "$S/client_key.pub" "$S/authorized_keys"
freeport
SSHD_PORT=$PORT
cat >"$S/sshd_config" <<EOF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $S/host_key
AuthorizedKeysFile $S/authorized_keys
PidFile none
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitTTY no
X11Forwarding no
AllowTcpForwarding local
Ciphers aes128-gcm@openssh.com
LogLevel ERROR
EOF
cp /etc/passwd "$S/passwd"
echo "sshd:x:65533:65534:berth bench sshd privsep:/run/sshd:/usr/sbin/nologin" >>"$S/passwd"
sed 's/^nobody:[*!]*:/nobody:x:/' /etc/shadow >"$S/shadow"
chmod 600 "$S/shadow"
# unshare without --fork execs: the PID below is sshd's listener.
unshare --mount --propagation private -- sh -c "mount --bind '$S/passwd' /etc/passwd && mount --bind '$S/shadow' /etc/shadow &&
	mount -t tmpfs -o mode=755 tmpfs /run && mkdir -m 755 /run/sshd &&
	LD_LIBRARY_PATH='$SSHD_LIBS' exec '$SSHD' -D -e -f '$S/sshd_config'" >"$T/sshd.log" 2>&1 &
PIDS+=($!)
SSHD_PID=$!
echo "[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1,2 "$S/host_key.pub")" >"$S/known_hosts"
for _ in $(seq 100); do [ -n "$(ss -Htln "sport = :$SSHD_PORT")" ] && break; sleep 0.1; done
freeport
SSHL=127.0.0.1:$PORT
ssh -F /dev/null -N -i "$S/client_key" -o UserKnownHostsFile="$S/known_hosts" -o StrictHostKeyChecking=yes \
	-o BatchMode=yes -o ExitOnForwardFailure=yes -c aes128-gcm@openssh.com -p "$SSHD_PORT" \
	-L "$SSHL:$SINK" nobody@127.0.0.1 2>>"$T/sshd.log" &
PIDS+=($!)
SSH_PID=$!
waitport "$SSHL"
SSHD_VERSION=$("$SSHD" -V 2>&1 | head -1 || true)
[ -n "$SSHD_LIBS" ] && SSHD_VERSION=$(LD_LIBRARY_PATH=$SSHD_LIBS "$SSHD" -V 2>&1 | head -1 || true)

# --- measure
PATHS="loopback relay relay-berth berth${BERTHHOST:+ berth-hostnet} ssh-L"
addr_of() {
	case $1 in loopback) echo "$SINK" ;; relay) echo "$RELAY" ;; relay-berth) echo "$BRELAY" ;; berth) echo "$BERTH" ;; berth-hostnet) echo "$BERTHHOST" ;; ssh-L) echo "$SSHL" ;; esac
}
procs_of() { # the processes whose CPU time is charged to a path, as NAME=PID…
	case $1 in
	loopback) echo "sink=$SINK_PID" ;;
	relay) echo "relay=$RELAY_PID sink=$SINK_PID" ;;
	relay-berth) echo "relay=$BRELAY_PID sink=$SINK_PID" ;;
	berth) echo "hostagent=$HA_PID agent=$AG_PID sink=${CSINK_PID:-0}" ;;
	berth-hostnet) echo "hostagent=$HA_PID agent=$AG_PID sink=${HSINK_PID:-0}" ;;
	ssh-L) echo "ssh=$SSH_PID sshd=$(descendants "$SSHD_PID" | tr '\n' ,) sink=$SINK_PID" ;;
	esac
}
declare -A CPU
gcs() { # gcs NAME → garbage collections so far of berth's agent or hostagent (gctrace lines), else 0
	case $1 in
	agent | hostagent) grep -c '^gc ' "$BERTH_HOME/default/$1.log" || true ;;
	*) echo 0 ;;
	esac
}
add() { # add KEY SECONDS → CPU[KEY] += SECONDS
	CPU[$1]=$(awk -v a="${CPU[$1]:-0}" -v d="$2" 'BEGIN{print a+d}')
}
# shellcheck disable=SC2086 # the PID lists are split on purpose
one() { # one PATH BYTES COUNT → appends Gbit/s to $T/PATH.gbps and adds CPU seconds when COUNT=1
	local path=$1 n=$2 count=$3 before=() after=() kv name pids i=0 out u s u0 s0 u1 s1 r0 w0 r1 w1 c0 c1 g0 g1
	for kv in $(procs_of "$path"); do pids=${kv#*=}; before+=("$(ticks ${pids//,/ }) $(gcs "${kv%%=*}")"); done
	out=$({ TIMEFORMAT='%U %S'; time "$T/tcpbench" send -c "$(addr_of "$path")" -n "$n"; } 2>"$T/time")
	for kv in $(procs_of "$path"); do pids=${kv#*=}; after+=("$(ticks ${pids//,/ }) $(gcs "${kv%%=*}")"); done
	[ "$count" = 1 ] || return 0
	echo "$out" | cut -d' ' -f3 >>"$T/$path.gbps"
	read -r u s <"$T/time"
	add "$path.sender.u" "$u"
	add "$path.sender.s" "$s"
	for kv in $(procs_of "$path"); do
		name=${kv%%=*}
		read -r u0 s0 r0 w0 c0 g0 <<<"${before[i]}"
		read -r u1 s1 r1 w1 c1 g1 <<<"${after[i]}"
		add "$path.$name.g" $((g1 - g0))
		add "$path.$name.c" $((c1 - c0))
		add "$path.$name.r" $((r1 - r0))
		add "$path.$name.w" $((w1 - w0))
		add "$path.$name.u" "$(awk -v t=$((u1 - u0)) -v hz="$HZ" 'BEGIN{print t/hz}')"
		add "$path.$name.s" "$(awk -v t=$((s1 - s0)) -v hz="$HZ" 'BEGIN{print t/hz}')"
		i=$((i + 1))
	done
}
echo "warm-up ($((WARM >> 20)) MiB each) …" >&2
for p in $PATHS; do one "$p" "$WARM" 0; done
for r in $(seq "$ROUNDS"); do
	echo "round $r/$ROUNDS …" >&2
	for p in $PATHS; do one "$p" "$BYTES" 1; done
done

stats() { sort -g "$1" | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f %.2f %.2f", m, a[1], a[NR]}'; }
read -r LOOP _ <<<"$(stats "$T/loopback.gbps")"
MIB=$(awk -v b="$BYTES" -v r="$ROUNDS" 'BEGIN{print b*r/2^20}')
GIB=$(awk -v b="$BYTES" -v r="$ROUNDS" 'BEGIN{print b*r/2^30}')
table=$(
	printf '| path | median Gbit/s | min | max | × loopback | CPU s/GiB, user+sys: sender; processes on the path |\n'
	printf '| --- | ---: | ---: | ---: | ---: | --- |\n'
	for p in $PATHS; do
		read -r med min max <<<"$(stats "$T/$p.gbps")"
		label=$p
		[ "$p" = berth ] && label="berth ($BERTH_NET network${BERTH_NO_HANDOFF:+, over SSH})"
		[ "$p" = berth-hostnet ] && label="berth (host network${BERTH_NO_HANDOFF:+, over SSH})"
		cpu=
		for name in sender $(procs_of "$p" | sed 's/=[^ ]*//g'); do
			cpu+=$(awk -v n="$name" -v u="${CPU[$p.$name.u]}" -v s="${CPU[$p.$name.s]}" -v g="$GIB" \
				'BEGIN{printf "%s %.2f+%.2f; ", n, u/g, s/g}')
		done
		cpu=${cpu%; }
		sys=
		for name in $(procs_of "$p" | sed 's/=[^ ]*//g'); do
			sys+=$(awk -v n="$name" -v r="${CPU[$p.$name.r]}" -v w="${CPU[$p.$name.w]}" -v c="${CPU[$p.$name.c]}" \
				-v g="${CPU[$p.$name.g]}" -v m="$MIB" \
				'BEGIN{printf "%s %.1f/%.1f/%.1f", n, r/m, w/m, c/m; if (g > 0) printf " (%.1f GC/GiB)", g*1024/m; printf "; "}')
		done
		echo "| $label | ${sys%; } |" >>"$T/syscalls"
		printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$med" "$min" "$max" \
			"$(awk -v m="$med" -v l="$LOOP" 'BEGIN{printf "%.2f", m/l}')" "$cpu"
	done
)
table+=$'\n\n'"| path | per MiB: read/write system calls (/proc/PID/io), context switches of all threads${BENCH_GCTRACE:+; Go GCs per GiB (gctrace)} |"$'\n'"| --- | --- |"$'\n'"$(cat "$T/syscalls")"
echo "$table"
BERTH_RATIO=$(stats "$T/berth.gbps" | awk -v l="$LOOP" '{printf "%.2f", $1/l}')
echo "berth / loopback: $BERTH_RATIO (target ≥ 0.6)"

if [ "${BENCH_NO_RECORD:-}" != 1 ]; then
	cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
	{
		echo
		echo "### portfwd — $(date -u '+%Y-%m-%d %H:%M UTC')"
		echo
		echo "Machine: $(uname -srm), $(nproc) cores ($cpu), $(. /etc/os-release && echo "$PRETTY_NAME");" \
			"load average before/after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)."
		echo "Command: \`${BERTH_NO_HANDOFF:+BERTH_NO_HANDOFF=1 }${BENCH_GCTRACE:+BENCH_GCTRACE=1 }bench/portfwd.sh $ROUNDS $BYTES\` ($ROUNDS rounds of $((BYTES >> 20)) MiB per path, alternating," \
			"after a $((WARM >> 20)) MiB warm-up each; berth $(git -C "$REPO" describe --always --dirty 2>/dev/null)," \
			"container network $BERTH_NET${CNET:+ ($CNET)}; $SSHD_VERSION, client $(ssh -V 2>&1 | cut -d, -f1))."
		echo
		echo "$table"
		echo
		echo "berth / loopback: **$BERTH_RATIO** (target ≥ 0.6)."
	} >>"$REPO/docs/benchmarks.md"
	echo "appended to docs/benchmarks.md" >&2
fi
