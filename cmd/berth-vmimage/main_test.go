package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/vmimage/initramfs"
	"github.com/berth-dev/berth/vmimage/instance"
)

func TestParseShare(t *testing.T) {
	s, err := parseShare("home:9p:/Users/me")
	if err != nil || s != (instance.Share{Tag: "home", Type: "9p", HostPath: "/Users/me", GuestPath: "/Users/me"}) {
		t.Fatalf("%+v %v", s, err)
	}
	s, err = parseShare("w:virtiofs:/w:/mnt/w")
	if err != nil || s.GuestPath != "/mnt/w" {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := parseShare("home:/x"); err == nil {
		t.Fatal("short share accepted")
	}
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	app := newApp()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	err := app.Run(append([]string{"berth-vmimage"}, args...))
	return out.String(), err
}

func TestPackConcatInstance(t *testing.T) {
	dir := t.TempDir()
	initPath := filepath.Join(dir, "init")
	os.WriteFile(initPath, []byte("#!/bin/sh\necho hi\n"), 0o755)
	key := filepath.Join(dir, "key")
	os.WriteFile(key, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n"), 0o600)
	if _, err := run(t, "pack", "--out", filepath.Join(dir, "a.cpio.gz"), "init="+initPath); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "instance", "--out", filepath.Join(dir, "i.cpio.gz"), "--host-key", key, "--share", "home:9p:/home"); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "concat", "--out", filepath.Join(dir, "all"), filepath.Join(dir, "a.cpio.gz"), filepath.Join(dir, "i.cpio.gz")); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "a.cpio.gz"))
	es, err := initramfs.ReadEntries(a)
	if err != nil || len(es) != 1 || es[0].Path != "init" || es[0].Mode != 0o755 {
		t.Fatalf("pack: %+v %v", es, err)
	}
	all, _ := os.ReadFile(filepath.Join(dir, "all"))
	if !bytes.HasPrefix(all, a) || len(all) < len(a)+20 {
		t.Fatalf("concat: %d bytes", len(all))
	}
	if _, err := run(t, "instance", "--out", filepath.Join(dir, "bad"), "--share", "home:nfs:/home"); err == nil {
		t.Fatal("bad share type accepted")
	}
}

func TestVerifyCommand(t *testing.T) {
	if _, err := run(t, "verify", t.TempDir()); err == nil {
		t.Fatal("verify of an empty dir succeeded")
	}
	out, err := run(t, "verify")
	if err == nil || !strings.Contains(err.Error(), "one image directory") {
		t.Fatalf("%q %v", out, err)
	}
}
