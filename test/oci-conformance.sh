#!/usr/bin/env bash
# oci-conformance.sh BINARY [TEST...] — run the OCI runtime-tools validation suite against runc, crun and
# `BINARY oci` (berth-agent) on this machine, print a table (test, runc, crun, berth) and pass iff berth passes
# every validation test that runc passes.
#
# What it does, all under one temporary directory that is removed at exit:
#   1. builds the validation programs and runtimetest from the Go module cache copy of
#      github.com/opencontainers/runtime-tools (fetched with `go mod download`; nothing of it lives in this repo);
#   2. builds rootfs-<arch>.tar.gz from busybox-static (`busybox --install -s` in a chroot);
#   3. writes one wrapper per runtime (the suite's RUNTIME), each with a private --root;
#   4. runs every selected validation program once per runtime, with a timeout, and parses its TAP output.
#      Some programs race with the container they test (pidfile kills a `true` that may already have exited;
#      hooks, prestart and poststart judge order by timing), so a test runc passes and berth fails is run
#      again for berth, up to OCI_RETRIES times; a pass on a retry shows as "pass*".
# Isolation and clean-up: the whole run happens in a private mount namespace (`unshare -m`, slave propagation)
# and each validation program in a further one, so no mount a runtime makes can reach the host
# (linux_ns_itype runs a container without a mount namespace of its own: its /proc, /sys and /dev land in the
# program's namespace). Containers left behind are deleted with `delete --force`, cgroups the suite created
# are removed, leftover mounts under the work directory are unmounted before it is removed, and the host's
# net.ipv4.ip_forward (which two programs set inside a container's network namespace) is checked to be
# unchanged. No program changes the host's network: linux_ns_itype's container shares the host's network
# namespace but only reads; the two programs that set net_cls/net_prio values on a container in the host's
# network namespace are excluded (see EXCLUDED).
#
# Verdict: a test runc does not pass here is listed as "skipped: runc <result>" and not required.
#
# Environment:
#   OCI_RUNTIMES       runtimes to run (default "runc crun berth"; berth needs BINARY)
#   OCI_TEST_TIMEOUT   seconds per validation program and runtime (default 60)
#   OCI_RETRIES        extra tries for a test runc passes and berth fails (default 2; racy programs, see above)
#   OCI_KEEP_LOGS      directory to copy every TAP log to (default: none; logs are removed with the temp dir)
#   RUNTIME_TOOLS_VERSION  module version of runtime-tools (default v0.9.0, the newest the module proxy serves)
set -euo pipefail

usage() {
	echo "usage: $0 BINARY [TEST...]   (BINARY: berth-agent; '-' runs only runc and crun)" >&2
	exit 2
}
[ $# -ge 1 ] || usage
BINARY=$1
shift
if [ "$(id -u)" != 0 ]; then
	echo "$0: needs root (containers, namespaces and cgroups); run it with sudo" >&2
	exit 1
fi

# Re-enter in a private mount namespace: every mount a runtime makes (or leaks) dies with it. Runs are
# serialised by a lock, held by flock(1) itself (-o: no container inherits it), because the programs share
# fixed cgroup paths such as /cgrouptest.
if [ -z "${OCI_CONFORMANCE_NS:-}" ]; then
	lock=/run/lock/berth-oci-conformance.lock
	flock -n "$lock" true || echo "$0: another run of the suite holds $lock; waiting" >&2
	export OCI_CONFORMANCE_NS=1
	exec flock -o "$lock" unshare --mount --propagation slave -- "$BASH" "$0" "$BINARY" "$@"
fi

RT_VERSION=${RUNTIME_TOOLS_VERSION:-v0.9.0}
TIMEOUT=${OCI_TEST_TIMEOUT:-60}
RETRIES=${OCI_RETRIES:-2}
RUNTIMES=${OCI_RUNTIMES:-runc crun berth}
if [ "$BINARY" = - ]; then
	RUNTIMES=$(echo "$RUNTIMES" | tr ' ' '\n' | grep -vx berth | tr '\n' ' ')
else
	BINARY=$(realpath "$BINARY")
	[ -x "$BINARY" ] || { echo "$0: $BINARY is not executable" >&2; exit 1; }
fi

# Validation programs that are not run, with the reason. Every other program of the suite runs.
declare -A EXCLUDED=(
	# Sets cgroup net_cls/net_prio values on a container that shares the host's network namespace (the test
	# removes the container's network namespace), and this host mounts neither controller.
	[linux_cgroups_network]="shares the host network namespace; net_cls/net_prio not mounted here"
	[linux_cgroups_relative_network]="shares the host network namespace; net_cls/net_prio not mounted here"
)

# Why runc does not pass a program on this host (what its log shows), printed next to "skipped". A program
# not listed here that runc fails is still skipped, with runc's result as the reason.
declare -A RUNC_FAILS=(
	[delete]="runc deletes a created (not stopped) container; the program wants an error"
	[hooks]="hook output not in the listed order (checked by timing)"
	[hooks_stdin]="the program misreads the state on the hook's stdin (ociVersion taken for the pid)"
	[killsig]="racy: the signal can come before the container's trap is set"
	[linux_cgroups_blkio]="this kernel has no blkio.weight/blkio.leaf_weight"
	[linux_cgroups_relative_blkio]="this kernel has no blkio.weight/blkio.leaf_weight"
	[linux_cgroups_hugetlb]="no hugetlb cgroup controller on this host"
	[linux_cgroups_relative_hugetlb]="no hugetlb cgroup controller on this host"
	[linux_cgroups_memory]="kernel memory limits (memory.kmem.*) are gone from this kernel"
	[linux_cgroups_relative_memory]="kernel memory limits (memory.kmem.*) are gone from this kernel"
	[linux_mount_label]="mount label (SELinux context=) refused: no SELinux here"
	[linux_process_apparmor_profile]="AppArmor is not enabled on this host"
	[linux_rootfs_propagation]="runc 1.1.5: unable to apply caps (EPERM) with this config"
	[process_capabilities]="runc 1.1.5: unable to apply caps (EPERM) with this config"
	[process_capabilities_fail]="runc 1.1.5 accepts the unknown capability CAP_TEST"
	[misc_props]="the program's second bundle lacks /runtimetest"
	[pidfile]="racy: kills a 'true' process that may have exited already"
	[poststart]="racy: hook order judged by timing"
	[prestart]="racy: hook order judged by timing"
	[poststart_fail]="runc stops at the failing hook (spec: warn and run the rest)"
	[poststop_fail]="runc stops at the failing hook (spec: warn and run the rest)"
	[process_rlimits]="soft RLIMIT_NOFILE reads 3999, not 3000"
)

die() { echo "$0: $*" >&2; exit 1; }
for tool in go tar busybox unshare timeout; do command -v "$tool" >/dev/null || die "$tool not found"; done
BUSYBOX=$(command -v busybox)
file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' || die "$BUSYBOX is not static (install busybox-static)"

# cleanup_containers RUNTIME: force-delete whatever the suite left in the runtime's root.
cleanup_containers() {
	local rt=$1 id
	for id in $("$WORK/rt/$rt" list -q 2>/dev/null); do
		"$WORK/rt/$rt" delete --force "$id" >/dev/null 2>&1 || echo "warning: $rt delete --force $id failed" >&2
	done
}

# cleanup_cgroups: remove (deepest first) the cgroups the suite made that did not exist before the run: those
# named after a container id (a UUID), the suite's fixed cgroupsPath values (/cgrouptest and
# testdir/cgrouptest/container), and the berth/ parent where berth puts containers without a cgroupsPath.
# Anything else, e.g. another test's cgroups, is left alone.
cleanup_cgroups() {
	find /sys/fs/cgroup -mindepth 1 -maxdepth 6 -type d 2>/dev/null | sort | comm -13 "$CG_BEFORE" - |
		grep -E '/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|cgrouptest|testdir|container|berth)$' |
		awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2- | while read -r d; do
		rmdir "$d" 2>/dev/null || echo "warning: could not remove cgroup $d" >&2
	done || true
}

# unmount_under DIR: lazily unmount (deepest first) every mount at or below DIR in this mount namespace. A
# runtime run without a mount namespace of its own (linux_ns_itype) mounts /proc, /sys and /dev of the bundle
# here; they must go before the bundle is removed.
unmount_under() {
	awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m" 2>/dev/null; done || true
}

cleanup() {
	local rt
	set +e
	for rt in $RUNTIMES; do [ -x "$WORK/rt/$rt" ] && cleanup_containers "$rt"; done
	[ -f "$CG_BEFORE" ] && cleanup_cgroups
	if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != "$FWD_BEFORE" ]; then
		echo "warning: host net.ipv4.ip_forward changed during the run; restoring $FWD_BEFORE" >&2
		echo "$FWD_BEFORE" >/proc/sys/net/ipv4/ip_forward
	fi
	unmount_under "$WORK"
	rm -rf --one-file-system "$WORK" || echo "warning: could not remove $WORK" >&2
}
FWD_BEFORE=$(cat /proc/sys/net/ipv4/ip_forward)
WORK=$(mktemp -d /tmp/berth-oci-conformance.XXXXXX)
trap cleanup EXIT
trap 'exit 130' INT TERM
CG_BEFORE=$WORK/cgroups-before
find /sys/fs/cgroup -mindepth 1 -maxdepth 6 -type d 2>/dev/null | sort >"$CG_BEFORE"

# 1. The validation programs.
GOARCH=$(go env GOARCH)
echo "building runtime-tools $RT_VERSION validation programs…" >&2
modjson=$(cd "$WORK" && GOFLAGS=-mod=mod go mod download -json "github.com/opencontainers/runtime-tools@$RT_VERSION") ||
	die "go mod download runtime-tools@$RT_VERSION failed: $modjson"
moddir=$(echo "$modjson" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$moddir" ] || die "runtime-tools module directory not found in: $modjson"
cp -r "$moddir" "$WORK/src"
chmod -R u+w "$WORK/src"
rm -f "$WORK"/src/rootfs-*.tar.gz
# v0.9.0 predates modules (Godeps). These versions are the newest the module proxy serves that still compile
# with it: runtime-spec v1.1.0 changed State.Status's type, selinux v1.11 dropped label.FileLabel.
cat >"$WORK/src/go.mod" <<'EOF'
module github.com/opencontainers/runtime-tools

go 1.21

require (
	github.com/blang/semver v3.5.1+incompatible
	github.com/hashicorp/go-multierror v1.1.1
	github.com/mndrix/tap-go v0.0.0-20171203230836-629fa407e90b
	github.com/mrunalp/fileutils v0.5.1
	github.com/opencontainers/runtime-spec v1.0.2
	github.com/opencontainers/selinux v1.10.1
	github.com/satori/go.uuid v1.2.0
	github.com/sirupsen/logrus v1.10.2
	github.com/syndtr/gocapability v0.0.0-20200815063812-42c35b437635
	github.com/urfave/cli v1.22.17
	github.com/xeipuuv/gojsonschema v1.2.0
	golang.org/x/sys v0.50.0
)
EOF
mkdir -p "$WORK/bin" "$WORK/run" "$WORK/tmp" "$WORK/rt" "$WORK/logs"
(cd "$WORK/src" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -o "$WORK/bin/" ./validation/... &&
	GOFLAGS=-mod=mod CGO_ENABLED=0 go build -o "$WORK/run/runtimetest" ./cmd/runtimetest) >&2 ||
	die "building the validation programs failed"

# 2. The rootfs the suite unpacks into each bundle.
rootfs=$WORK/rootfs
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,dev,proc,sys,tmp,root}
cp "$BUSYBOX" "$rootfs/bin/busybox"
chroot "$rootfs" /bin/busybox --install -s
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$rootfs/etc/group"
tar -C "$rootfs" -czf "$WORK/run/rootfs-$GOARCH.tar.gz" .

# 3. One wrapper per runtime: the suite calls "$RUNTIME create|start|state|kill|delete …".
for rt in $RUNTIMES; do
	root=$WORK/root-$rt
	case $rt in
	runc)
		command -v runc >/dev/null || die "runc not found"
		printf '#!/bin/sh\nexec runc --root %q "$@"\n' "$root" >"$WORK/rt/runc"
		;;
	crun)
		# crun 1.8 trips over this host's hybrid layout (an empty cgroup2 at /sys/fs/cgroup/unified):
		# hide it in a private mount namespace of its own, never on the host. (So crun's linux_ns_itype
		# result is not crun's: its container inherits that namespace, not the program's.)
		command -v crun >/dev/null || die "crun not found"
		printf '#!/bin/sh\nexec unshare --mount --propagation private sh -c '\''umount /sys/fs/cgroup/unified 2>/dev/null; exec crun --root "$0" "$@"'\'' %q "$@"\n' \
			"$root" >"$WORK/rt/crun"
		;;
	berth)
		printf '#!/bin/sh\nexec %q oci --root %q "$@"\n' "$BINARY" "$root" >"$WORK/rt/berth"
		;;
	*) die "unknown runtime $rt (want runc, crun or berth)" ;;
	esac
	chmod +x "$WORK/rt/$rt"
done

# 4. Run.
if [ $# -gt 0 ]; then
	TESTS=("$@")
else
	mapfile -t TESTS < <(ls "$WORK/bin")
fi

# classify LOG RC: print pass | FAIL k/n | exit N | error | incomplete | skip | timeout.
# A program reports through TAP ("not ok" lines), through its exit status (util.Fatal exits 1: a *_fail program
# that saw no error from the runtime prints nothing else), or, for hooks, through a bare YAML "error" block.
# Some programs print one TAP stream per case, so plans are summed.
classify() {
	local log=$1 rc=$2 planned oks notoks skips
	case $rc in 124 | 137) echo timeout; return ;; esac
	if grep -qiE '^1\.\.0 *# *skip' "$log"; then echo skip; return; fi
	planned=$(sed -n 's/^1\.\.\([0-9][0-9]*\).*/\1/p' "$log" | awk '{ s += $1 } END { print s + 0 }')
	oks=$(grep -cE '^ok ' "$log" || true)
	notoks=$(grep -E '^not ok ' "$log" | grep -cviE '# *(todo|skip)' || true)
	skips=$(grep -E '^(not )?ok ' "$log" | grep -ciE '# *skip' || true)
	if [ "$notoks" -gt 0 ]; then echo "FAIL $notoks/$((oks + notoks))"; return; fi
	if [ "$rc" != 0 ]; then echo "exit $rc"; return; fi
	if [ "$oks" = 0 ] && grep -q '"error":' "$log"; then echo error; return; fi
	if [ "$oks" -lt "$planned" ]; then echo incomplete; return; fi
	if [ "$oks" -gt 0 ] && [ "$skips" = "$oks" ]; then echo skip; return; fi
	echo pass
}

declare -A RESULT
for t in "${TESTS[@]}"; do
	[ -x "$WORK/bin/$t" ] || die "no validation program $t"
	if [ -n "${EXCLUDED[$t]:-}" ]; then
		echo "excluded $t: ${EXCLUDED[$t]}" >&2
		continue
	fi
	for rt in $RUNTIMES; do
		log=$WORK/logs/$t.$rt.tap
		try=1
		while :; do
			start=$(date +%s%N)
			rc=0
			# Each program gets a mount namespace of its own too (see linux_ns_itype above).
			(cd "$WORK/run" && TMPDIR=$WORK/tmp RUNTIME=$WORK/rt/$rt unshare --mount --propagation slave -- \
				timeout -k 5 "$TIMEOUT" "$WORK/bin/$t") >"$log" 2>&1 </dev/null || rc=$?
			echo "$rc" >"$log.rc"
			RESULT[$t.$rt]=$(classify "$log" "$rc")
			printf '%-36s %-6s %-10s %5d ms%s\n' "$t" "$rt" "${RESULT[$t.$rt]}" \
				$((($(date +%s%N) - start) / 1000000)) "$([ "$try" -gt 1 ] && echo " (try $try)")" >&2
			cleanup_containers "$rt"
			cleanup_cgroups
			unmount_under "$WORK/tmp"
			rm -rf --one-file-system "${WORK:?}"/tmp/* || echo "warning: could not empty $WORK/tmp" >&2
			# Several programs race with the container (pidfile kills a `true` that may have exited already;
			# the hook programs judge order by timing): a required test berth fails is tried again.
			if [ "$rt" = berth ] && [ "${RESULT[$t.berth]}" != pass ] && [ "${RESULT[$t.runc]:-}" = pass ] &&
				[ "$try" -le "$RETRIES" ]; then
				try=$((try + 1))
				continue
			fi
			break
		done
		[ "$try" -gt 1 ] && [ "${RESULT[$t.$rt]}" = pass ] && RESULT[$t.$rt]="pass*"
	done
done
if [ -n "${OCI_KEEP_LOGS:-}" ]; then mkdir -p "$OCI_KEEP_LOGS" && cp "$WORK"/logs/* "$OCI_KEEP_LOGS"/; fi

# Table and verdict.
printf '\n%-36s' TEST
for rt in $RUNTIMES; do printf ' %-10s' "$rt"; done
printf ' %s\n' NOTE
required=0 failed=()
for t in "${TESTS[@]}"; do
	printf '%-36s' "$t"
	if [ -n "${EXCLUDED[$t]:-}" ]; then
		for rt in $RUNTIMES; do printf ' %-10s' -; done
		printf ' excluded: %s\n' "${EXCLUDED[$t]}"
		continue
	fi
	for rt in $RUNTIMES; do printf ' %-10s' "${RESULT[$t.$rt]}"; done
	note=
	if [[ " $RUNTIMES " == *" runc "* ]]; then
		if [ "${RESULT[$t.runc]}" = pass ]; then
			required=$((required + 1))
			if [[ " $RUNTIMES " == *" berth "* ]] && [[ "${RESULT[$t.berth]}" != pass* ]]; then
				failed+=("$t")
				note="BERTH MUST PASS"
			fi
		else
			note="skipped: runc ${RESULT[$t.runc]}${RUNC_FAILS[$t]:+ — ${RUNC_FAILS[$t]}}"
		fi
	fi
	printf ' %s\n' "$note"
done

echo "(pass* = passed on a retry; FAIL k/n = k of n test points failed; exit N = the program exited N;"
echo " error = it reported an error without test points; excluded tests were not run, for the reason given)"
if [[ " $RUNTIMES " != *" runc "* ]]; then
	echo "runc was not run: no verdict"
elif [[ " $RUNTIMES " == *" berth "* ]]; then
	for t in "${failed[@]}"; do
		echo
		echo "--- berth: $t (first failures)"
		grep -A8 -E '^not ok ' "$WORK/logs/$t.berth.tap" | head -40 || tail -20 "$WORK/logs/$t.berth.tap"
	done
	echo
	if [ ${#failed[@]} -gt 0 ]; then
		echo "FAIL: berth fails ${#failed[@]} of the $required validation tests runc passes: ${failed[*]}"
		exit 1
	fi
	echo "PASS: berth passes all $required validation tests runc passes"
fi
