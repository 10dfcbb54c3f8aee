#!/bin/sh
# Build a minimal Debian 12 image that Lima boots with direct kernel boot, for the opt-in Lima test
# (make test-lima), for the host's architecture: OUTDIR gets rootfs.qcow2 (ext4 without a partition table, root=/dev/vda),
# vmlinuz and initrd.img. Needs root, debootstrap, mke2fs and qemu-img; downloads packages from $MIRROR.
set -eu
out=${1:?usage: mkimage.sh OUTDIR}
mirror=${MIRROR:-http://deb.debian.org/debian}
root=$out/rootfs
mkdir -p "$out"
if [ ! -e "$root/.complete" ]; then
	rm -rf "$root"
	debootstrap --variant=minbase \
		--include=linux-image-$(dpkg --print-architecture),python3-cffi-backend,initramfs-tools,systemd-sysv,udev,dbus,cloud-init,openssh-server,sudo,bash,iproute2,ifupdown,isc-dhcp-client,kmod,procps,ca-certificates,e2fsprogs,util-linux,mount \
		bookworm "$root" "$mirror"
	touch "$root/.complete"
fi
echo "/dev/vda / ext4 defaults 0 1" >"$root/etc/fstab"
echo berth-lima >"$root/etc/hostname"
# cloud-init: only the NoCloud data source (Lima's cidata disk).
mkdir -p "$root/etc/cloud/cloud.cfg.d"
echo "datasource_list: [ NoCloud, None ]" >"$root/etc/cloud/cloud.cfg.d/90-berth.cfg"
cp -L "$root/vmlinuz" "$out/vmlinuz"
cp -L "$root/initrd.img" "$out/initrd.img"
rm -f "$out/rootfs.img"
mke2fs -q -t ext4 -L root -d "$root" "$out/rootfs.img" 4G
qemu-img convert -f raw -O qcow2 "$out/rootfs.img" "$out/rootfs.qcow2"
rm -f "$out/rootfs.img"
echo "$out/rootfs.qcow2 $out/vmlinuz $out/initrd.img"
