// Package kernel turns a Debian kernel image into what berth boots.
//
// x86-64: Debian ships a bzImage whose payload is the kernel ELF compressed
// with xz (with the x86 BCJ filter). Vmlinux finds the payload through the
// boot protocol's setup header (payload_offset/payload_length), decompresses
// it and trims the relocation table the build appends, giving the ELF that
// QEMU boots directly through the PVH entry point (-M microvm -kernel
// vmlinux). PVHEntry checks for the Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY
// that PVH boot needs (Debian 12 builds CONFIG_PVH=y). gzip and zstd payloads
// are decoded in Go; xz payloads need the xz tool, because no Go xz decoder
// at hand implements the BCJ filter the kernel build uses.
//
// arm64: Debian 12's vmlinuz is already the uncompressed Image (other
// distributions gzip it); Arm64Image decompresses a gzip'd one and checks
// the arm64 Image header magic either way.
package kernel
