package libct

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "tool")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := lookPath("tool", []string{"PATH=/nonexistent:" + dir}); err != nil || p != exe {
		t.Errorf("lookPath(tool) = %q, %v", p, err)
	}
	if p, err := lookPath(exe, nil); err != nil || p != exe {
		t.Errorf("lookPath(abs) = %q, %v", p, err)
	}
	_, err := lookPath("nosuch", []string{"PATH=" + dir})
	if err == nil || err.Error() != `exec: "nosuch": executable file not found in $PATH` || !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("lookPath(nosuch) = %v", err)
	}
	if _, err := lookPath("data", []string{"PATH=" + dir}); err == nil {
		t.Error("found a file without exec bits")
	}
	if _, err := lookPath(filepath.Join(dir, "missing"), nil); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("lookPath(missing) = %v", err)
	}
}

func TestPasswdHome(t *testing.T) {
	passwd := "root:x:0:0:root:/root:/bin/sh\nbad line\nu:x:1000:1000::/home/u:/bin/sh\n"
	if h := passwdHome(strings.NewReader(passwd), 1000); h != "/home/u" {
		t.Errorf("uid 1000: %q", h)
	}
	if h := passwdHome(strings.NewReader(passwd), 5); h != "" {
		t.Errorf("uid 5: %q", h)
	}
	if !hasEnv([]string{"A=1", "HOME=/x"}, "HOME") || hasEnv([]string{"HOMEX=1"}, "HOME") {
		t.Error("hasEnv")
	}
}

// TestConsoleSocketProtocol checks the runc console-socket message: the
// pty name as payload and exactly one fd as SCM_RIGHTS.
func TestConsoleSocketProtocol(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "c.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := os.CreateTemp(t.TempDir(), "fake-master")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	errc := make(chan error, 1)
	go func() { errc <- sendConsole(sock, f, "/dev/pts/7") }()
	c, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf, oob := make([]byte, 256), make([]byte, unix.CmsgSpace(8))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != "/dev/pts/7" {
		t.Errorf("payload %q", buf[:n])
	}
	fd, err := parseRights(oob[:oobn])
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var a, b unix.Stat_t
	if unix.Fstat(fd, &a) != nil || unix.Fstat(int(f.Fd()), &b) != nil || a.Ino != b.Ino {
		t.Error("received fd is not the sent file")
	}
	if _, err := parseRights(nil); err == nil {
		t.Error("parseRights accepted a message without fds")
	}
}
