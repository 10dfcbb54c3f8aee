// Package debpkg reads Debian binary packages (.deb) in pure Go and fetches
// them with apt-get without installing anything.
//
// Reading: a .deb is an ar archive holding debian-binary, control.tar.* and
// data.tar.*; the tar members may be uncompressed, gzip, xz or zstd
// (github.com/ulikunitz/xz and github.com/klauspost/compress). This part is
// portable and has no external tools.
//
// Fetching (Apt): apt-get and apt-cache run with a private state directory
// (own sources list, own package lists, empty dpkg status, the wanted
// architecture), so the host's apt configuration, its dpkg architectures and
// its installed packages are never touched, and a foreign architecture
// (arm64 on an amd64 builder) needs no dpkg --add-architecture. Downloads are
// verified against the SHA256 of the package index and cached by that hash,
// so a rebuild with a warm cache needs no network.
package debpkg
