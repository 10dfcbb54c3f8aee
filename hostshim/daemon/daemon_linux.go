package daemon

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// probe reads /proc/PID/stat: the start time (field 22) and whether the process is alive (not a zombie or
// dead task).
func probe(pid int) (start uint64, alive bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	state, start, err := parseStat(b)
	if err != nil {
		return 0, false
	}
	return start, state != 'Z' && state != 'X' && state != 'x'
}

// parseStat extracts the state (field 3) and start time (field 22) of a /proc/PID/stat line. The command
// name (field 2) is in parentheses and may contain spaces and parentheses, so fields count from the last ')'.
func parseStat(b []byte) (state byte, start uint64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed stat %q", b)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("malformed stat %q", b)
	}
	start, err = strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed start time in stat: %w", err)
	}
	return f[0][0], start, nil
}
