package main

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/berth-dev/berth/platform/hcs"
)

func TestDefaultsMatchHCS(t *testing.T) {
	if defaultPipe != hcs.PipeName {
		t.Errorf("defaultPipe = %q, hcs.PipeName = %q", defaultPipe, hcs.PipeName)
	}
	o, err := parseServe(nil, `C:\ProgramData\berth`, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Isolation != hcs.IsolationProcess {
		t.Errorf("default isolation %q, want %q", o.Isolation, hcs.IsolationProcess)
	}
}

func TestDefaultRoot(t *testing.T) {
	for env, want := range map[string]string{
		"":                `C:\ProgramData\berth`,
		`D:\ProgramData`:  `D:\ProgramData\berth`,
		`D:\ProgramData\`: `D:\ProgramData\berth`,
	} {
		got := defaultRoot(func(k string) string {
			if k != "ProgramData" {
				t.Errorf("getenv(%q)", k)
			}
			return env
		})
		if got != want {
			t.Errorf("defaultRoot with ProgramData=%q = %q, want %q", env, got, want)
		}
	}
}

func TestParseServe(t *testing.T) {
	const root = `C:\ProgramData\berth`
	ok := []struct {
		args []string
		want serveOptions
	}{
		{nil, serveOptions{Pipe: defaultPipe, Root: root, Isolation: "process"}},
		{[]string{"--pipe", `\\.\pipe\berth_engine`, "--root", `E:\b`}, serveOptions{Pipe: defaultPipe, Root: `E:\b`, Isolation: "process"}},
		{[]string{"--pipe", `\\.\PIPE\Berth_Engine`, "--isolation", "hyperv", "--debug"}, serveOptions{Pipe: `\\.\PIPE\Berth_Engine`, Root: root, Isolation: "hyperv", Debug: true}},
	}
	for _, c := range ok {
		got, err := parseServe(c.args, root, io.Discard)
		if err != nil || got != c.want {
			t.Errorf("parseServe(%q) = %+v, %v; want %+v", c.args, got, err, c.want)
		}
	}
	bad := []struct {
		args    []string
		printed bool // a flag error the flag set writes out
	}{
		{[]string{"--pipe", `\\.\pipe\other`}, false},
		{[]string{"--root", ""}, false},
		{[]string{"--isolation", "default"}, false},
		{[]string{"extra"}, false},
		{[]string{"--nope"}, true},
	}
	for _, c := range bad {
		var out strings.Builder
		_, err := parseServe(c.args, root, &out)
		if !errors.Is(err, errUsage) {
			t.Errorf("parseServe(%q) = %v, want a usage error", c.args, err)
		}
		if errors.Is(err, errFlags) != c.printed || (out.Len() > 0) != c.printed {
			t.Errorf("parseServe(%q): errFlags %v, wrote %q; want printed=%v", c.args, errors.Is(err, errFlags), out.String(), c.printed)
		}
	}
	_, err := parseServe([]string{"-h"}, root, io.Discard)
	if !errors.Is(err, flag.ErrHelp) || !errors.Is(err, errFlags) {
		t.Errorf("parseServe(-h) = %v, want flag.ErrHelp", err)
	}
}
