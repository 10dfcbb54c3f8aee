#!/usr/bin/env bash
# installers/test/deb-chroot.sh — install berth's .deb into a fresh Debian 12 root and run it there.
#
# Usage (root): installers/test/deb-chroot.sh [BERTH.deb [BERTH.rpm]]
#   Without an argument it builds a linux/amd64 .deb and .rpm first (go build + installers/build.sh
#   --only "deb rpm"; with BERTH_VM_DIR=DIR it packages the VM image DIR/amd64 too, and the test
#   verifies it).
#
# The root is a debootstrap --variant=minbase bookworm tree from the mirror apt already uses. The
# first run caches it as a tarball in $BERTH_CI_CACHE (default /var/cache/berth-ci); later runs
# unpack that (seconds). Inside a private mount namespace it mounts /proc in the root, installs
# the package with `chroot ROOT dpkg -i`, checks the files, runs `chroot ROOT berth version` and
# `berth-agent --version`, removes the package with `dpkg -r` and checks that the files are gone.
# Then, when there is an .rpm and the rpm tool, the same with `rpm --root ROOT -i` / `-e` in that root.
# Everything it mounted is unmounted and the root is deleted on exit. Exits non-zero on any failure.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${BERTH_CI_CACHE:-/var/cache/berth-ci}
suite=bookworm
mirror=${BERTH_DEBIAN_MIRROR:-}
t0=$(date +%s)

die() { echo "deb-chroot: FAIL: $*" >&2; exit 1; }
ok() { echo "deb-chroot: ok: $*"; }
elapsed() { echo "$(($(date +%s) - t0))s"; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mount)"
for c in debootstrap chroot unshare dpkg-deb; do
	command -v "$c" >/dev/null || die "$c not found (apt-get install -y debootstrap)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-deb-chroot.XXXXXX")
root=$work/root
cleanup() {
	# The mounts live in a private mount namespace that is gone by now; unmount anyway in case the
	# script was run with a shared namespace, and refuse to delete a root that is still mounted.
	awk -v r="$root/" 'index($5, r) == 1 { print $5 }' /proc/self/mountinfo 2>/dev/null | sort -r |
		while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
	if grep -q " $root/" /proc/self/mountinfo 2>/dev/null; then
		echo "deb-chroot: WARNING: mounts left under $root, not deleting it" >&2
		return
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# 1. The package.
deb=${1:-}
rpmfile=${2:-}
if [ -z "$deb" ]; then
	ver=0.0.0-ci.$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo dev)
	commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
	echo "deb-chroot: building a linux/amd64 .deb ($ver)"
	d=$work/dist/berth-$ver-linux-amd64
	mkdir -p "$d"
	ld="-s -w -X main.version=$ver -X main.commit=$commit"
	(cd "$repo" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags "$ld" -o "$d/berth" ./cmd/berth)
	(cd "$repo" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags "$ld" -o "$d/berth-agent" ./cmd/berth-agent)
	tar -C "$work/dist" -czf "$d.tar.gz" "$(basename "$d")"
	rm -rf "$d"
	vmargs=()
	if [ -n "${BERTH_VM_DIR:-}" ]; then vmargs=(--vm "$BERTH_VM_DIR"); fi
	"$repo/installers/build.sh" --dist "$work/dist" --version "$ver" --only "deb rpm" --arch amd64 "${vmargs[@]}" | sed 's/^/   /'
	deb=$(ls "$work"/dist/berth_*_amd64.deb)
	rpmfile=$(ls "$work"/dist/berth_*_amd64.rpm)
	echo "deb-chroot: package built at $(elapsed)"
fi
[ -f "$deb" ] || die "no such package $deb"
deb=$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")
pkgver=$(dpkg-deb --field "$deb" Version)
arch=$(dpkg-deb --field "$deb" Architecture)
[ "$arch" = "$(dpkg --print-architecture)" ] || die "package is $arch, this machine runs $(dpkg --print-architecture)"
echo "deb-chroot: package $(basename "$deb"): berth $pkgver $arch"

# 2. The fresh root: a cached debootstrap tarball, or a new debootstrap.
if [ -z "$mirror" ]; then
	# The mirror apt uses here (deb822 or one-line sources).
	mirror=$(grep -hoE '^URIs: *http[^ ]*/debian/?$|^deb +http[^ ]*/debian/? ' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
		head -1 | sed -E 's/^(URIs: *|deb +)//; s/ *$//' || true)
	[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
fi
tarball=$cache/$suite-minbase-$arch.tar.gz
mkdir -p "$root"
if [ -f "$tarball" ]; then
	tar -xzf "$tarball" -C "$root"
	echo "deb-chroot: root unpacked from $tarball at $(elapsed)"
else
	echo "deb-chroot: debootstrap --variant=minbase $suite from $mirror (cached afterwards in $tarball)"
	# In a private mount namespace: whatever debootstrap mounts in the target goes away with it.
	unshare --mount --propagation private \
		debootstrap --variant=minbase --arch="$arch" "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
		{ tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
	mkdir -p "$cache"
	rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*_Packages
	tar -czf "$tarball.tmp" -C "$root" . && mv "$tarball.tmp" "$tarball"
	echo "deb-chroot: root bootstrapped and cached at $(elapsed) ($(du -h "$tarball" | cut -f1))"
fi
[ -x "$root/usr/bin/dpkg" ] || die "the root has no dpkg"
[ ! -e "$root/usr/bin/berth" ] || die "the fresh root already has /usr/bin/berth"

# 3. Install, run, remove — in a private mount namespace so that no mount outlives the step.
cp "$deb" "$root/tmp/berth.deb"
if [ -n "$rpmfile" ]; then
	[ -f "$rpmfile" ] || die "no such package $rpmfile"
	rpmfile=$(cd "$(dirname "$rpmfile")" && pwd)/$(basename "$rpmfile")
	if ! command -v rpm >/dev/null; then
		echo "deb-chroot: SKIP rpm check: the rpm tool is not installed (apt-get install -y rpm)"
		rpmfile=
	fi
fi
export root pkgver repo rpmfile
# shellcheck disable=SC2016 # the inner script expands its own variables
unshare --mount --propagation private bash -euo pipefail -c '
	mount -t proc proc "$root/proc"
	trap "umount \"\$root/proc\"" EXIT
	env="env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C"
	$env chroot "$root" dpkg -i /tmp/berth.deb | sed "s/^/   dpkg: /"
	st=$($env chroot "$root" dpkg-query -W -f "\${Status} \${Version}" berth)
	[ "$st" = "install ok installed $pkgver" ] || { echo "deb-chroot: FAIL: dpkg status: $st" >&2; exit 1; }
	echo "deb-chroot: ok: dpkg says: berth $st"
	for f in /usr/bin/berth /usr/lib/berth/berth-agent; do
		[ -x "$root$f" ] || { echo "deb-chroot: FAIL: $f missing or not executable" >&2; exit 1; }
	done
	[ -f "$root/usr/share/doc/berth/README.installed" ] || { echo "deb-chroot: FAIL: no docs" >&2; exit 1; }
	echo "deb-chroot: ok: /usr/bin/berth, /usr/lib/berth/berth-agent and /usr/share/doc/berth installed"
	if [ -f "$root/usr/share/berth/vm/$(dpkg --print-architecture)/manifest.json" ]; then
		vmd="$root/usr/share/berth/vm/$(dpkg --print-architecture)"
		(cd "$repo" && go run ./cmd/berth-vmimage verify "$vmd") | sed "s/^/   vmimage: /"
		echo "deb-chroot: ok: VM image in /usr/share/berth/vm verifies against its manifest (berth-vmimage verify)"
	fi
	out=$($env chroot "$root" berth version 2>&1) || { echo "$out" >&2; echo "deb-chroot: FAIL: berth version exited non-zero" >&2; exit 1; }
	echo "$out" | sed "s/^/   | /"
	grep -q "^berth " <<<"$out" || { echo "deb-chroot: FAIL: berth version printed no version line" >&2; exit 1; }
	grep -q "commit:" <<<"$out" || { echo "deb-chroot: FAIL: berth version printed no commit" >&2; exit 1; }
	echo "deb-chroot: ok: chroot ROOT berth version"
	man="$root/usr/share/berth/vm/$(dpkg --print-architecture)/manifest.json"
	if [ -f "$man" ] && grep -q "^ vm image: " <<<"$out"; then
		n=0
		for h in $(echo "$out" | grep -oE "sha256:[0-9a-f]{64}" | cut -d: -f2); do
			grep -q "\"$h\"" "$man" || { echo "deb-chroot: FAIL: berth version prints digest $h, not in manifest.json" >&2; exit 1; }
			n=$((n + 1))
		done
		[ "$n" -gt 0 ] || { echo "deb-chroot: FAIL: berth version names a VM image but prints no digest" >&2; exit 1; }
		echo "deb-chroot: ok: berth version prints the $n VM image digests of manifest.json"
	fi
	echo "$out" >"$root/../berth-version.txt"
	aout=$($env chroot "$root" /usr/lib/berth/berth-agent --version 2>&1) || { echo "$aout" >&2; exit 1; }
	echo "   | $aout"
	echo "deb-chroot: ok: chroot ROOT /usr/lib/berth/berth-agent --version"
	$env chroot "$root" dpkg -r berth | sed "s/^/   dpkg: /"
	for f in /usr/bin/berth /usr/lib/berth/berth-agent; do
		[ ! -e "$root$f" ] || { echo "deb-chroot: FAIL: $f left after dpkg -r" >&2; exit 1; }
	done
	echo "deb-chroot: ok: dpkg -r berth removed its files"
	[ -n "$rpmfile" ] || exit 0
	rpm --root "$root" --initdb
	rpm --root "$root" -i --nodeps --nosignature "$rpmfile" 2>&1 | { grep -v -e "use Alien" -e "know what you are doing" || true; } | sed "s/^/   rpm: /"
	q=$(rpm --root "$root" -q --qf "%{NAME} %{VERSION}" berth) || { echo "deb-chroot: FAIL: rpm -q berth: $q" >&2; exit 1; }
	[ "$q" = "berth $pkgver" ] || { echo "deb-chroot: FAIL: rpm says $q, want berth $pkgver" >&2; exit 1; }
	echo "deb-chroot: ok: rpm --root ROOT -i: $q installed"
	rout=$($env chroot "$root" berth version --client 2>&1) || { echo "$rout" >&2; echo "deb-chroot: FAIL: berth version (rpm) exited non-zero" >&2; exit 1; }
	[ "$(head -1 <<<"$rout")" = "$(head -1 <<<"$out")" ] || { echo "deb-chroot: FAIL: rpm berth says $(head -1 <<<"$rout")" >&2; exit 1; }
	echo "deb-chroot: ok: chroot ROOT berth version (from the rpm): $(head -1 <<<"$rout")"
	[ -x "$root/usr/lib/berth/berth-agent" ] || { echo "deb-chroot: FAIL: rpm installed no agent" >&2; exit 1; }
	rpm --root "$root" -e berth 2>&1 | { grep -v -e "use Alien" -e "know what you are doing" || true; } | sed "s/^/   rpm: /"
	for f in /usr/bin/berth /usr/lib/berth/berth-agent; do
		[ ! -e "$root$f" ] || { echo "deb-chroot: FAIL: $f left after rpm -e" >&2; exit 1; }
	done
	echo "deb-chroot: ok: rpm --root ROOT -e berth removed its files"
'
# The version berth printed is the one the package carries (build.sh: no leading v, '-' -> '+',
# a non-numeric version gets a 0.0.0+git prefix).
raw=$(sed -n 's/^berth //p' "$work/berth-version.txt" | head -1)
want=${raw#v}
want=${want//-/+}
case $want in [0-9]*) ;; *) want="0.0.0+git$want" ;; esac
[ "$want" = "$pkgver" ] || die "berth version says $raw, the package is $pkgver"
ok "berth version $raw matches package version $pkgver"
! grep -q " $root/" /proc/self/mountinfo || die "a mount under $root is still visible"
ok "no mount left under the root"
echo "deb-chroot: PASS in $(elapsed)"
