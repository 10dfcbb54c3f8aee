// Package kmod picks the kernel modules berth needs, with their
// dependencies, from a kernel's module tree.
//
// The dependency graph comes from modules.dep when the tree has one, or is
// built from each module's .modinfo ELF section ("depends=", "softdep=",
// "alias=") when it does not: Debian's linux-image packages ship no
// modules.dep (depmod writes it at install time), and berth never installs
// them. Modules listed in modules.builtin are compiled in and skipped.
// Resolve returns the modules in load order (dependencies first), which is
// what the guest's loader needs: it loads them one by one with finit_module
// or busybox insmod, without depmod or modprobe.
package kmod
