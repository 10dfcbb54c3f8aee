#!/usr/bin/env bash
# installers/build.sh — turn `make dist` output into installers:
#   dist/berth_<pkgver>_<arch>.deb and .rpm         (nfpm v2.45.2 from installers/tools)
#   dist/berth-<ver>-windows-amd64-setup.exe        (NSIS, Authenticode-signed with osslsigncode, verified)
#   dist/berth.rb                                   (Homebrew formula, url/sha256 of the darwin archives)
# and rewrites dist/SHA256SUMS over every artifact.
#
# Usage: installers/build.sh [--dist DIR] [--version VER] [--vm DIR] [--only "deb rpm nsis brew"]
#                            [--arch "amd64 arm64"] [--url-base URL]
#   --dist      directory with berth-<ver>-<os>-<arch>.tar.gz (default: dist)
#   --version   the VERSION `make dist` used (default: git describe, as the Makefile)
#   --vm        VM images: DIR/<arch>/{vmlinux|Image,bzImage,initramfs.cpio.zst,manifest.json}
#               (default: DIST/vm when it exists; without it the packages carry no VM image)
#   --url-base  where the release archives will be downloadable (Homebrew url), default
#               https://github.com/berth-dev/berth/releases/download/<ver>
# Signing: BERTH_SIGN_CERT and BERTH_SIGN_KEY (PEM) name the code-signing certificate and key;
# without them a throwaway self-signed certificate is generated in a temporary directory and
# deleted on exit (never written under the repository or dist/).
# Needs: go, makensis (nsis), osslsigncode, openssl; rpm (optional, to list the .rpm).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dist=dist
version=
vm=
only="deb rpm nsis brew"
arches="amd64 arm64"
urlbase=

die() { echo "build.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
	case $1 in
	--dist) dist=$2; shift 2 ;;
	--version) version=$2; shift 2 ;;
	--vm) vm=$2; shift 2 ;;
	--only) only=$2; shift 2 ;;
	--arch) arches=$2; shift 2 ;;
	--url-base) urlbase=$2; shift 2 ;;
	-h | --help) sed -n '2,22p' "$0"; exit 0 ;;
	*) die "unknown argument $1" ;;
	esac
done
[ -n "$version" ] || version=$(git -C "$repo" describe --tags --always --dirty 2>/dev/null || echo dev)
[ -d "$dist" ] || die "no $dist directory (run make dist first)"
dist=$(cd "$dist" && pwd)
if [ -z "$vm" ] && [ -d "$dist/vm" ]; then vm=$dist/vm; fi
if [ -n "$vm" ]; then vm=$(cd "$vm" && pwd); fi
[ -n "$urlbase" ] || urlbase="https://github.com/berth-dev/berth/releases/download/$version"

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-installers.XXXXXX")
trap 'rm -rf "$work"' EXIT

wants() { case " $only " in *" $1 "*) return 0 ;; esac; return 1; }
step() { echo "== $*"; }

# pkg_version: a version dpkg and rpm both accept: no leading v, '-' (git describe) becomes '+',
# and a version that does not start with a digit (a bare commit, "dev") gets a 0.0.0+git prefix.
pkg_version() {
	local v=${1#v}
	v=${v//-/+}
	case $v in [0-9]*) ;; *) v="0.0.0+git$v" ;; esac
	printf '%s\n' "$v"
}
# vi_version: the a.b.c.d Windows wants in VERSIONINFO (0.0.0.0 when VER is not a release).
vi_version() {
	if [[ $1 =~ ^v?([0-9]+)\.([0-9]+)\.([0-9]+) ]]; then
		printf '%s.%s.%s.0\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}"
	else
		echo 0.0.0.0
	fi
}
# unpack OS ARCH: extract the dist archive, print the directory holding berth[.exe] and berth-agent
# (and, for windows, berth-engine.exe).
unpack() {
	local tgz="$dist/berth-$version-$1-$2.tar.gz" d="$work/$1-$2"
	[ -f "$tgz" ] || die "missing $tgz (make dist VERSION=$version)"
	mkdir -p "$d"
	tar -xzf "$tgz" -C "$d" --strip-components=1
	printf '%s\n' "$d"
}

pv=$(pkg_version "$version")
built=()

if wants deb || wants rpm; then
	step "nfpm v2.45.2 (installers/tools)"
	go -C "$repo/installers/tools" build -o "$work/nfpm" github.com/goreleaser/nfpm/v2/cmd/nfpm
	for arch in $arches; do
		src=$(unpack linux "$arch")
		stage="$work/stage-$arch"
		mkdir -p "$stage/vm" "$stage/doc"
		install -m 0755 "$src/berth" "$stage/berth"
		install -m 0755 "$src/berth-agent" "$stage/berth-agent"
		install -m 0644 "$repo/README.md" "$stage/doc/README.md"
		if [ -n "$vm" ] && [ -f "$vm/$arch/manifest.json" ]; then
			find "$vm/$arch/" -maxdepth 1 -type f -exec install -m 0644 {} "$stage/vm/" \;
			echo "   VM image for $arch: $(find "$stage/vm" -type f -printf '%f ')"
		else
			echo "   no VM image for $arch (none under ${vm:-<no --vm>}/$arch)"
		fi
		for fmt in deb rpm; do
			wants "$fmt" || continue
			out="$dist/berth_${pv}_${arch}.$fmt"
			step "$fmt $arch -> $out"
			(cd "$repo" && BERTH_ARCH=$arch BERTH_PKG_VERSION=$pv BERTH_STAGE=$stage \
				"$work/nfpm" pkg --config installers/linux/nfpm.yaml --packager "$fmt" --target "$out" >/dev/null)
			built+=("$out")
		done
		if wants deb; then
			deb="$dist/berth_${pv}_${arch}.deb"
			got=$(dpkg-deb --field "$deb" Package Version Architecture | tr '\n' ' ')
			echo "   deb fields: $got"
			dpkg-deb --contents "$deb" | awk '{print $6}' >"$work/list"
			for f in ./usr/bin/berth ./usr/lib/berth/berth-agent ./usr/share/doc/berth/README.md; do
				grep -qx "$f" "$work/list" || die "$deb lacks $f"
			done
			echo "   deb holds /usr/bin/berth, /usr/lib/berth/berth-agent, docs ($(wc -l <"$work/list") entries)"
		fi
		if wants rpm && command -v rpm >/dev/null; then
			r="$dist/berth_${pv}_${arch}.rpm"
			rpm -qp --qf '   rpm: %{NAME} %{VERSION}-%{RELEASE} %{ARCH}\n' "$r" 2>/dev/null
			rpm -qlp "$r" >"$work/rpmlist" 2>/dev/null || die "rpm cannot read $r"
			for f in /usr/bin/berth /usr/lib/berth/berth-agent /usr/share/doc/berth/README.md; do
				grep -qx "$f" "$work/rpmlist" || die "$r lacks $f"
			done
			echo "   rpm holds /usr/bin/berth, /usr/lib/berth/berth-agent, docs"
		fi
	done
fi

if wants nsis; then
	command -v makensis >/dev/null || die "makensis not found (apt-get install nsis)"
	command -v osslsigncode >/dev/null || die "osslsigncode not found (apt-get install osslsigncode)"
	src=$(unpack windows amd64)
	for f in berth.exe berth-engine.exe berth-agent; do
		[ -f "$src/$f" ] || die "the windows/amd64 archive holds no $f (make dist VERSION=$version)"
	done
	cert=${BERTH_SIGN_CERT:-}
	key=${BERTH_SIGN_KEY:-}
	if [ -z "$cert" ] || [ -z "$key" ]; then
		step "throwaway self-signed code-signing certificate (deleted on exit)"
		cert="$work/sign/cert.pem" key="$work/sign/key.pem"
		mkdir -m 0700 "$work/sign"
		openssl req -x509 -newkey rsa:3072 -nodes -days 7 -sha256 \
			-subj "/CN=berth throwaway code signing/O=berth CI" \
			-addext "basicConstraints=critical,CA:FALSE" \
			-addext "keyUsage=critical,digitalSignature" \
			-addext "extendedKeyUsage=codeSigning" \
			-keyout "$key" -out "$cert" 2>/dev/null
	fi
	out="$dist/berth-$version-windows-amd64-setup.exe"
	defs=(-DVERSION="$version" -DVIVERSION="$(vi_version "$version")" -DBERTH_EXE="$src/berth.exe"
		-DBERTH_ENGINE_EXE="$src/berth-engine.exe" -DBERTH_AGENT="$src/berth-agent" -DREADME="$repo/README.md" -DOUTFILE="$out"
		-DSIGN_CMD="sh $repo/installers/windows/sign.sh $cert $key")
	if [ -n "$vm" ] && [ -f "$vm/amd64/manifest.json" ]; then defs+=(-DVMDIR="$vm/amd64"); fi
	step "makensis -> $out"
	makensis -V2 "${defs[@]}" "$repo/installers/windows/berth.nsi" 2>&1 | sed 's/^/   /' ||
		die "makensis failed"
	[ -f "$out" ] || die "makensis wrote no $out"
	step "osslsigncode sign + verify $out"
	sh "$repo/installers/windows/sign.sh" "$cert" "$key" "$out"
	osslsigncode verify -CAfile "$cert" -in "$out" >"$work/verify.log" 2>&1 ||
		{ sed 's/^/   /' "$work/verify.log"; die "signature of $out does not verify"; }
	grep -q '^Signature verification: ok' "$work/verify.log" || die "no 'Signature verification: ok' for $out"
	grep -E '^(Signature verification|Number of signers|[[:space:]]+Subject:)' "$work/verify.log" | sort -u | sed 's/^/   /'
	built+=("$out")
fi

if wants brew; then
	step "Homebrew formula -> $dist/berth.rb"
	a64="berth-$version-darwin-arm64.tar.gz" x64="berth-$version-darwin-amd64.tar.gz"
	for f in "$a64" "$x64"; do [ -f "$dist/$f" ] || die "missing darwin archive $dist/$f"; done
	s64=$(sha256sum "$dist/$a64" | cut -d' ' -f1)
	sx64=$(sha256sum "$dist/$x64" | cut -d' ' -f1)
	sed -e "s|@@VERSION@@|${version#v}|" \
		-e "s|@@URL_DARWIN_ARM64@@|$urlbase/$a64|" -e "s|@@SHA256_DARWIN_ARM64@@|$s64|" \
		-e "s|@@URL_DARWIN_AMD64@@|$urlbase/$x64|" -e "s|@@SHA256_DARWIN_AMD64@@|$sx64|" \
		"$repo/installers/homebrew/berth.rb" >"$dist/berth.rb"
	! grep -nE '@@[A-Z0-9_]+@@' "$dist/berth.rb" || die "placeholders left in $dist/berth.rb"
	if command -v ruby >/dev/null; then ruby -c "$dist/berth.rb" | sed 's/^/   /'; fi
	echo "   arm64 $s64"
	echo "   amd64 $sx64"
	built+=("$dist/berth.rb")
fi

step "SHA256SUMS"
(cd "$dist" && shopt -s nullglob && sums=(*.tar.gz *.deb *.rpm *-setup.exe berth.r[b]) && sha256sum -- "${sums[@]}" >SHA256SUMS)
for f in "${built[@]}"; do echo "   built $(basename "$f") ($(du -h "$f" | cut -f1))"; done
