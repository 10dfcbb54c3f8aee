package daemon

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	line := "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615\n"
	st, start, err := parseStat([]byte(line))
	if err != nil || st != 'S' || start != 987654 {
		t.Fatalf("parseStat: %c %d %v", st, start, err)
	}
	if _, _, err := parseStat([]byte("1 (x) S 1")); err == nil {
		t.Fatal("short stat parsed")
	}
}

// A zombie is dead.
func TestZombieIsDead(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Skip("no true binary:", err)
	}
	pid := cmd.Process.Pid
	// Wait for the exit without reaping it.
	var info syscall.WaitStatus
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, alive := probe(pid)
		if !alive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("child still alive")
		}
		time.Sleep(5 * time.Millisecond)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatalf("the unreaped child's stat: %v", err)
	}
	if st, _, err := parseStat(b); err != nil || st != 'Z' {
		t.Fatalf("state %c %v, want a zombie", st, err)
	}
	if _, err := syscall.Wait4(pid, &info, 0, nil); err != nil {
		t.Fatal(err)
	}
}
