package qemu

import (
	"os"
	"strconv"
	"strings"
)

// kvmUsable reports whether /dev/kvm can be opened for reading and writing.
func kvmUsable() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// tscKHz is the host's TSC frequency: the kernel's tsc_freq_khz where exposed, else cpuinfo's cpu MHz.
func tscKHz() int {
	if b, err := os.ReadFile("/sys/devices/system/cpu/cpu0/tsc_freq_khz"); err == nil {
		if k, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && k > 0 {
			return k
		}
	}
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return ParseCPUInfoKHz(string(b))
}
