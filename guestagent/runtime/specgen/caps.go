package specgen

import (
	"fmt"
	"strings"
)

// defaultCaps is Docker's default capability set, in Docker's order.
var defaultCaps = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
}

// allCaps are all Linux capabilities, by number (0 … CAP_CHECKPOINT_RESTORE = 40).
var allCaps = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_DAC_READ_SEARCH",
	"CAP_FOWNER",
	"CAP_FSETID",
	"CAP_KILL",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST",
	"CAP_NET_ADMIN",
	"CAP_NET_RAW",
	"CAP_IPC_LOCK",
	"CAP_IPC_OWNER",
	"CAP_SYS_MODULE",
	"CAP_SYS_RAWIO",
	"CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE",
	"CAP_SYS_PACCT",
	"CAP_SYS_ADMIN",
	"CAP_SYS_BOOT",
	"CAP_SYS_NICE",
	"CAP_SYS_RESOURCE",
	"CAP_SYS_TIME",
	"CAP_SYS_TTY_CONFIG",
	"CAP_MKNOD",
	"CAP_LEASE",
	"CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL",
	"CAP_SETFCAP",
	"CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN",
	"CAP_SYSLOG",
	"CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND",
	"CAP_AUDIT_READ",
	"CAP_PERFMON",
	"CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

const allKeyword = "ALL"

// normalizeCaps upper-cases names, adds the CAP_ prefix and rejects unknown
// names; "ALL" is kept as is.
func normalizeCaps(names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, n := range names {
		c := strings.ToUpper(strings.TrimSpace(n))
		if c == allKeyword {
			out = append(out, c)
			continue
		}
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if !contains(allCaps, c) {
			return nil, fmt.Errorf("unknown capability: %q: %w", n, ErrInvalid)
		}
		out = append(out, c)
	}
	return out, nil
}

// capabilities applies Docker's rules: privileged gets every capability;
// CapAdd "ALL" means every capability but those dropped; CapDrop "ALL" means
// only those added; otherwise the defaults minus drops plus adds.
func capabilities(adds, drops []string, privileged bool) ([]string, error) {
	if privileged {
		return append([]string(nil), allCaps...), nil
	}
	add, err := normalizeCaps(adds)
	if err != nil {
		return nil, fmt.Errorf("cap-add: %w", err)
	}
	drop, err := normalizeCaps(drops)
	if err != nil {
		return nil, fmt.Errorf("cap-drop: %w", err)
	}
	var caps []string
	switch {
	case contains(add, allKeyword):
		for _, c := range allCaps {
			if !contains(drop, c) {
				caps = append(caps, c)
			}
		}
	case contains(drop, allKeyword):
		caps = add
	default:
		for _, c := range defaultCaps {
			if !contains(drop, c) {
				caps = append(caps, c)
			}
		}
		caps = append(caps, add...)
	}
	return dedup(caps), nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// dedup drops repeated entries, keeping the first of each, and returns a
// non-nil slice.
func dedup(list []string) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if !contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
