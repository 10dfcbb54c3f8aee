package engine

import (
	"strconv"
	"strings"
	"syscall"
)

// linuxSignals are the Linux signal numbers by name. The engine serves
// Linux containers from any host OS, so it carries its own table rather than
// the host's syscall constants.
var linuxSignals = map[string]int{
	"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7, "FPE": 8,
	"KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15, "STKFLT": 16,
	"CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24,
	"XFSZ": 25, "VTALRM": 26, "PROF": 27, "WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
}

// parseSignal accepts "KILL", "SIGKILL", "9" and "RTMIN+3" as dockerd does.
func parseSignal(v string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(v); err == nil {
		if n <= 0 || n > 64 {
			return 0, invalidf("invalid signal: %s", v)
		}
		return syscall.Signal(n), nil
	}
	name := strings.TrimPrefix(strings.ToUpper(v), "SIG")
	if n, ok := linuxSignals[name]; ok {
		return syscall.Signal(n), nil
	}
	for base, num := range map[string]int{"RTMIN": 34, "RTMAX": 64} {
		if rest, ok := strings.CutPrefix(name, base); ok {
			off := 0
			if rest != "" {
				o, err := strconv.Atoi(rest)
				if err != nil {
					return 0, invalidf("invalid signal: %s", v)
				}
				off = o
			}
			if n := num + off; n >= 34 && n <= 64 {
				return syscall.Signal(n), nil
			}
		}
	}
	return 0, invalidf("invalid signal: %s", v)
}
