#!/bin/sh
# Authenticode-sign a PE file in place with osslsigncode.
# Usage: sign.sh CERT.pem KEY.pem FILE
# Used by installers/build.sh for the setup.exe and, through makensis !uninstfinalize, for the
# uninstaller. No timestamp server: CI has no network beyond the package mirrors.
set -eu
cert=$1 key=$2 file=$3
osslsigncode sign -certs "$cert" -key "$key" -h sha256 \
	-n "berth" -i "https://github.com/berth-dev/berth" \
	-in "$file" -out "$file.signed" >/dev/null
mv -f "$file.signed" "$file"
