#!/usr/bin/env bash
# installers/test/nsis.sh — build the Windows installer with makensis, sign it with osslsigncode
# and a throwaway self-signed code-signing certificate, and check the signature for real.
#
# Usage: installers/test/nsis.sh [DIST VERSION]
#   With DIST and VERSION it packages DIST/berth-VERSION-windows-amd64.tar.gz (from make dist);
#   without, it builds berth.exe and berth-engine.exe (windows/amd64) and the linux/amd64 agent first.
# Needs: go, makensis (nsis), osslsigncode, openssl, 7zz (7zip), file — apt-get install -y nsis
# osslsigncode openssl 7zip file.
#
# Checks: installers/build.sh --only nsis succeeds (it signs and verifies too); the result is a
# PE Nullsoft installer; `osslsigncode verify -CAfile CERT` says "Signature verification: ok";
# the same file verified against another certificate fails; a copy with one byte changed fails;
# the installer holds berth.exe and berth-engine.exe (byte-identical to the archive's), berth-agent,
# path.ps1, README.md and uninstall.exe, and uninstall.exe carries a valid signature by the same
# certificate. The certificates and keys live in a temporary directory removed on exit.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
t0=$(date +%s)
die() { echo "nsis: FAIL: $*" >&2; exit 1; }
ok() { echo "nsis: ok: $*"; }
elapsed() { echo "$(($(date +%s) - t0))s"; }

for c in go makensis osslsigncode openssl 7zz file; do
	command -v "$c" >/dev/null || die "$c not found (apt-get install -y nsis osslsigncode openssl 7zip file)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-nsis.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -m 0700 "$work/pki"

# throwaway NAME: a self-signed code-signing certificate and its key.
throwaway() {
	openssl req -x509 -newkey rsa:3072 -nodes -days 2 -sha256 \
		-subj "/CN=berth CI throwaway $1/O=berth CI" \
		-addext "basicConstraints=critical,CA:FALSE" \
		-addext "keyUsage=critical,digitalSignature" \
		-addext "extendedKeyUsage=codeSigning" \
		-keyout "$work/pki/$1.key" -out "$work/pki/$1.pem" 2>/dev/null
}
throwaway signer
throwaway other
ok "throwaway certificates: $(openssl x509 -in "$work/pki/signer.pem" -noout -subject)"

if [ $# -ge 2 ]; then
	dist=$(cd "$1" && pwd) version=$2
else
	version=0.0.0-ci.$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo dev)
	commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
	dist=$work/dist
	d=$dist/berth-$version-windows-amd64
	mkdir -p "$d"
	ld="-s -w -X main.version=$version -X main.commit=$commit"
	echo "nsis: building berth.exe, berth-engine.exe (windows/amd64) and berth-agent (linux/amd64), $version"
	(cd "$repo" && CGO_ENABLED=0 GOOS=windows GOARCH=amd64 go build -trimpath -ldflags "$ld" -o "$d/berth.exe" ./cmd/berth)
	(cd "$repo" && CGO_ENABLED=0 GOOS=windows GOARCH=amd64 go build -trimpath -ldflags "$ld" -o "$d/berth-engine.exe" ./cmd/berth-engine)
	(cd "$repo" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags "$ld" -o "$d/berth-agent" ./cmd/berth-agent)
	tar -C "$dist" -czf "$d.tar.gz" "$(basename "$d")"
	rm -rf "$d"
	ok "binaries built at $(elapsed)"
fi

BERTH_SIGN_CERT=$work/pki/signer.pem BERTH_SIGN_KEY=$work/pki/signer.key \
	"$repo/installers/build.sh" --dist "$dist" --version "$version" --only nsis | sed 's/^/   /'
exe=$dist/berth-$version-windows-amd64-setup.exe
[ -f "$exe" ] || die "no $exe"
ok "makensis + osslsigncode sign: $(basename "$exe") ($(du -h "$exe" | cut -f1)) at $(elapsed)"

kind=$(file -b "$exe")
case $kind in *PE32*Nullsoft*) ok "file: $kind" ;; *) die "not a Nullsoft PE installer: $kind" ;; esac

osslsigncode verify -CAfile "$work/pki/signer.pem" -in "$exe" >"$work/v.log" 2>&1 ||
	{ cat "$work/v.log" >&2; die "osslsigncode verify -CAfile signer.pem failed"; }
grep -q '^Signature verification: ok' "$work/v.log" || die "verify printed no 'Signature verification: ok'"
grep -E 'Calculated message digest|Subject:' "$work/v.log" | sort -u | sed 's/^/   /'
ok "osslsigncode verify -CAfile <throwaway cert>: Signature verification: ok"

if osslsigncode verify -CAfile "$work/pki/other.pem" -in "$exe" >"$work/v2.log" 2>&1; then
	die "the signature verified against an unrelated certificate"
fi
grep -q 'Signature verification: failed' "$work/v2.log" || die "unrelated certificate: no 'Signature verification: failed'"
ok "verify against an unrelated certificate fails, as it must: $(grep -m1 -o 'Verify error:.*' "$work/v2.log" || true)"

cp "$exe" "$work/tampered.exe"
size=$(stat -c %s "$exe")
off=$((size / 2))
b=$(od -An -tu1 -j "$off" -N1 "$exe" | tr -d ' ')
# shellcheck disable=SC2059 # the format is the one byte to write, as an octal escape
printf "$(printf '\\%03o' $(((b + 1) % 256)))" | dd of="$work/tampered.exe" bs=1 seek="$off" conv=notrunc status=none
if osslsigncode verify -CAfile "$work/pki/signer.pem" -in "$work/tampered.exe" >"$work/v3.log" 2>&1; then
	die "a copy with byte $off changed still verifies"
fi
grep -q 'MISMATCH' "$work/v3.log" || die "the changed copy failed for another reason than a digest mismatch"
ok "a copy with one byte changed (offset $off) fails verification: message digest MISMATCH"

7zz l -ba "$exe" >"$work/list" || die "7zz cannot list $exe"
for f in berth.exe berth-engine.exe berth-agent path.ps1 README.md uninstall.exe; do
	grep -qE "[[:space:]]$f\$" "$work/list" || die "the installer holds no $f"
done
ok "the installer holds berth.exe, berth-engine.exe, berth-agent, path.ps1, README.md, uninstall.exe"
mkdir "$work/x"
(cd "$work/x" && 7zz x -y "$exe" berth.exe berth-engine.exe uninstall.exe >/dev/null) || die "7zz cannot extract"
for f in berth.exe berth-engine.exe; do
	want=$(tar -xzOf "$dist/berth-$version-windows-amd64.tar.gz" "berth-$version-windows-amd64/$f" | sha256sum | cut -d' ' -f1)
	got=$(sha256sum "$work/x/$f" | cut -d' ' -f1)
	[ "$want" = "$got" ] || die "$f in the installer ($got) differs from the archive's ($want)"
	ok "$f in the installer is the archive's (sha256 $got)"
done
file -b "$work/x/berth-engine.exe" | grep -q 'PE32+.*x86-64' || die "berth-engine.exe is not a windows/amd64 PE: $(file -b "$work/x/berth-engine.exe")"
osslsigncode verify -CAfile "$work/pki/signer.pem" -in "$work/x/uninstall.exe" >"$work/v4.log" 2>&1 ||
	{ cat "$work/v4.log" >&2; die "uninstall.exe does not verify"; }
grep -q '^Signature verification: ok' "$work/v4.log" || die "uninstall.exe: no 'Signature verification: ok'"
ok "uninstall.exe (signed through !uninstfinalize) verifies"

echo "nsis: PASS in $(elapsed)"
