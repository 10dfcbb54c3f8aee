package specgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// maxID is the largest uid/gid accepted (as the kernel's signed 32-bit ids).
const maxID = 1<<31 - 1

const (
	passwdFile = "etc/passwd"
	groupFile  = "etc/group"
)

type passwdEntry struct {
	name     string
	uid, gid int
	home     string
}

type groupEntry struct {
	name    string
	gid     int
	members []string
}

// readLines returns the non-empty, non-comment lines of name in fsys, or
// (nil, false, nil) when the file (or fsys) does not exist.
func readLines(fsys fs.FS, name string) ([]string, bool, error) {
	if fsys == nil {
		return nil, false, nil
	}
	data, err := fs.ReadFile(fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read /%s: %w", name, err)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		lines = append(lines, line)
	}
	if err := sc.Err(); err != nil {
		return nil, false, fmt.Errorf("read /%s: %w", name, err)
	}
	return lines, true, nil
}

// parsePasswd parses name:password:uid:gid:gecos:home:shell lines; malformed
// lines are skipped (as libc does).
func parsePasswd(lines []string) []passwdEntry {
	var out []passwdEntry
	for _, l := range lines {
		f := strings.Split(l, ":")
		if len(f) < 4 {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		e := passwdEntry{name: f[0], uid: uid, gid: gid}
		if len(f) > 5 {
			e.home = f[5]
		}
		out = append(out, e)
	}
	return out
}

// parseGroup parses name:password:gid:member,member lines.
func parseGroup(lines []string) []groupEntry {
	var out []groupEntry
	for _, l := range lines {
		f := strings.Split(l, ":")
		if len(f) < 3 {
			continue
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		e := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					e.members = append(e.members, m)
				}
			}
		}
		out = append(out, e)
	}
	return out
}

func resolveUser(rootfs fs.FS, spec string) (specs.User, string, error) {
	userArg, groupArg, _ := strings.Cut(spec, ":")
	uidArg, uidErr := strconv.Atoi(userArg)
	gidArg, gidErr := strconv.Atoi(groupArg)

	pwLines, _, err := readLines(rootfs, passwdFile)
	if err != nil {
		return specs.User{}, "", err
	}
	grLines, _, err := readLines(rootfs, groupFile)
	if err != nil {
		return specs.User{}, "", err
	}
	users := parsePasswd(pwLines)
	groups := parseGroup(grLines)

	uid, gid, home := 0, 0, "/"
	matchedName := ""
	var match *passwdEntry
	for i := range users {
		u := &users[i]
		var ok bool
		switch {
		case userArg == "":
			ok = u.uid == 0
		case uidErr == nil:
			// A numeric user is always a uid, never a name.
			ok = u.uid == uidArg
		default:
			ok = u.name == userArg
		}
		if ok {
			match = u // first match wins
			break
		}
	}
	switch {
	case match != nil:
		matchedName, uid, gid = match.name, match.uid, match.gid
		if match.home != "" {
			home = match.home
		}
	case userArg != "":
		if uidErr != nil {
			return specs.User{}, "", fmt.Errorf("unable to find user %s: no matching entries in passwd file: %w", userArg, ErrInvalid)
		}
		if uidArg < 0 || uidArg > maxID {
			return specs.User{}, "", fmt.Errorf("user %s: uid out of range [0, %d]: %w", userArg, maxID, ErrInvalid)
		}
		uid = uidArg
	}

	var sgids []int
	if groupArg != "" {
		found := false
		for _, g := range groups {
			if (gidErr == nil && g.gid == gidArg) || (gidErr != nil && g.name == groupArg) {
				gid, found = g.gid, true
				break
			}
		}
		if !found {
			if gidErr != nil {
				return specs.User{}, "", fmt.Errorf("unable to find group %s: no matching entries in group file: %w", groupArg, ErrInvalid)
			}
			if gidArg < 0 || gidArg > maxID {
				return specs.User{}, "", fmt.Errorf("group %s: gid out of range [0, %d]: %w", groupArg, maxID, ErrInvalid)
			}
			gid = gidArg
		}
	} else if matchedName != "" {
		for _, g := range groups {
			for _, m := range g.members {
				if m == matchedName {
					sgids = append(sgids, g.gid)
					break
				}
			}
		}
	}

	u := specs.User{UID: uint32(uid), GID: uint32(gid), AdditionalGids: []uint32{uint32(gid)}}
	for _, g := range sgids {
		if !containsGid(u.AdditionalGids, uint32(g)) {
			u.AdditionalGids = append(u.AdditionalGids, uint32(g))
		}
	}
	return u, home, nil
}

func containsGid(list []uint32, g uint32) bool {
	for _, x := range list {
		if x == g {
			return true
		}
	}
	return false
}
