#!/bin/sh
# QEMU wrapper for the opt-in Lima test: Lima picks KVM whenever /dev/kvm exists, even when the user cannot
# use it (test-lima.sh points QEMU_SYSTEM_<ARCH> here then). It turns accel=kvm into TCG and "-cpu host"
# into "-cpu max", and runs the real qemu-system binary named by $BERTH_REAL_QEMU.
set -eu
prev=
for a in "$@"; do
	shift
	case $prev:$a in
	-cpu:host) a=max ;;
	*:*accel=kvm*) a=$(printf '%s' "$a" | sed 's/accel=kvm/accel=tcg/') ;;
	esac
	set -- "$@" "$a"
	prev=$a
done
exec "${BERTH_REAL_QEMU:?}" "$@"
