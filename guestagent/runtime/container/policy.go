package container

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Docker's restart backoff.
const (
	backoffInitial = 100 * time.Millisecond
	backoffMax     = time.Minute
	backoffReset   = 10 * time.Second
)

// validateRestartPolicy checks a policy and its combination with AutoRemove.
func validateRestartPolicy(p RestartPolicy, autoRemove bool) error {
	switch p.Name {
	case "", "no":
		if p.MaximumRetryCount != 0 {
			return fmt.Errorf("%w: maximum retry count cannot be used with restart policy %q", ErrInvalid, p.Name)
		}
		return nil
	case "always", "unless-stopped":
		if p.MaximumRetryCount != 0 {
			return fmt.Errorf("%w: maximum retry count cannot be used with restart policy %q", ErrInvalid, p.Name)
		}
	case "on-failure":
		if p.MaximumRetryCount < 0 {
			return fmt.Errorf("%w: maximum retry count cannot be negative", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: invalid restart policy %q", ErrInvalid, p.Name)
	}
	if autoRemove {
		return fmt.Errorf("%w: can't create 'AutoRemove' container with restart policy", ErrInvalid)
	}
	return nil
}

// restartDecision says whether a container that exited with exitCode after
// running for ran should be restarted, and after which delay. prevDelay is the
// delay of the previous restart (0 if none); restarts counts restarts so far.
func restartDecision(p RestartPolicy, exitCode, restarts int, manualStop bool, ran, prevDelay time.Duration) (bool, time.Duration) {
	if manualStop {
		return false, 0
	}
	switch p.Name {
	case "always", "unless-stopped":
	case "on-failure":
		if exitCode == 0 {
			return false, 0
		}
		if p.MaximumRetryCount > 0 && restarts >= p.MaximumRetryCount {
			return false, 0
		}
	default:
		return false, 0
	}
	return true, nextBackoff(prevDelay, ran)
}

// nextBackoff is Docker's: 100 ms, doubling per quick exit up to a minute,
// back to 100 ms after a run of at least 10 s.
func nextBackoff(prev, ran time.Duration) time.Duration {
	if ran >= backoffReset || prev <= 0 {
		return backoffInitial
	}
	return min(prev*2, backoffMax)
}

// startErrorCode is the exit code Docker records when a start fails: 127
// for a missing executable, 126 for one that cannot be run, 128 otherwise.
func startErrorCode(err error) int {
	msg := err.Error()
	switch {
	case errors.Is(err, fs.ErrNotExist) || strings.Contains(msg, "no such file") || strings.Contains(msg, "not found in $PATH") || strings.Contains(msg, "executable file not found"):
		return 127
	case errors.Is(err, fs.ErrPermission) || strings.Contains(msg, "permission denied"):
		return 126
	}
	return 128
}

// Linux signal numbers (containers are Linux whatever the agent's build OS).
var signals = map[string]syscall.Signal{
	"ABRT": 6, "ALRM": 14, "BUS": 7, "CHLD": 17, "CONT": 18, "FPE": 8, "HUP": 1, "ILL": 4,
	"INT": 2, "IO": 29, "IOT": 6, "KILL": 9, "PIPE": 13, "POLL": 29, "PROF": 27, "PWR": 30,
	"QUIT": 3, "SEGV": 11, "STKFLT": 16, "STOP": 19, "SYS": 31, "TERM": 15, "TRAP": 5,
	"TSTP": 20, "TTIN": 21, "TTOU": 22, "URG": 23, "USR1": 10, "USR2": 12, "VTALRM": 26,
	"WINCH": 28, "XCPU": 24, "XFSZ": 25,
}

const (
	sigKILL = syscall.Signal(9)
	sigTERM = syscall.Signal(15)
)

// ParseSignal parses "SIGTERM", "TERM", "term", "15" or "SIGRTMIN+3".
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("%w: invalid signal %q", ErrInvalid, s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if sig, ok := signals[name]; ok {
		return sig, nil
	}
	for base, num := range map[string]int{"RTMIN": 34, "RTMAX": 64} {
		if name == base {
			return syscall.Signal(num), nil
		}
		if rest, ok := strings.CutPrefix(name, base); ok && len(rest) > 1 {
			off, err := strconv.Atoi(rest)
			n := num + off
			if err == nil && n >= 34 && n <= 64 {
				return syscall.Signal(n), nil
			}
		}
	}
	return 0, fmt.Errorf("%w: invalid signal %q", ErrInvalid, s)
}

// stopSignal returns the container's stop signal: its own, the image's, then SIGTERM.
func stopSignal(own, image string) syscall.Signal {
	for _, s := range []string{own, image} {
		if s == "" {
			continue
		}
		if sig, err := ParseSignal(s); err == nil {
			return sig
		}
	}
	return sigTERM
}
