// Package vmimage builds and verifies berth's VM image: a Debian kernel
// (an uncompressed, PVH-bootable vmlinux on amd64 plus the bzImage as a
// fallback; the uncompressed Image on arm64), and an initramfs with
// berth-agent as /init, the kernel modules berth needs, busybox for a debug
// shell and a built-in demo container image. manifest.json lists every
// artifact with its SHA256, the Debian packages (versions and SHA256) it was
// built from, the module load list and the agent's build.
//
// Build (build.go) runs apt-get/apt-cache and xz, so it needs a Debian-like
// builder; Manifest, ReadManifest and Verify are pure and portable, for hosts
// that download a prebuilt image. Sub-packages: debpkg (.deb reading, apt
// fetching), kernel (bzImage → vmlinux, PVH check, arm64 Image), kmod
// (module dependency resolution), initramfs (reproducible cpio), instance
// (per-instance config archive), demo (the demo container image).
package vmimage
