package container

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"strings"

	"github.com/berth-dev/berth/guestagent/runtime/specgen"
)

// hostsFile is the container's /etc/hosts (Docker's default lines; with the
// host network, the host's file as it is).
func hostsFile(hostname string, hostNetwork bool, hostHosts []byte) []byte {
	if hostNetwork && len(hostHosts) > 0 {
		return hostHosts
	}
	var b bytes.Buffer
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("ff00::0\tip6-mcastprefix\n")
	b.WriteString("ff02::1\tip6-allnodes\n")
	b.WriteString("ff02::2\tip6-allrouters\n")
	if hostname != "" {
		fmt.Fprintf(&b, "127.0.1.1\t%s\n", hostname)
	}
	return b.Bytes()
}

// Docker's fallback nameservers when the host has only local ones.
var defaultNameservers = []string{"8.8.8.8", "8.8.4.4"}

// resolvConf is the container's /etc/resolv.conf from the host's: as it is
// with the host network; otherwise without localhost nameservers (unreachable
// from a network namespace), falling back to public ones.
func resolvConf(host []byte, hostNetwork bool) []byte {
	if hostNetwork && len(host) > 0 {
		return host
	}
	var b bytes.Buffer
	servers := 0
	sc := bufio.NewScanner(bytes.NewReader(host))
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) >= 2 && fields[0] == "nameserver" {
			ip := fields[1]
			if strings.HasPrefix(ip, "127.") || ip == "::1" {
				continue
			}
			servers++
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	if servers == 0 {
		for _, ns := range defaultNameservers {
			fmt.Fprintf(&b, "nameserver %s\n", ns)
		}
	}
	return b.Bytes()
}

// parseBind parses Docker's "-v /src:/dst[:opts]" where opts is a comma list
// of ro, rw, z, Z, nocopy and a propagation mode. Named volumes are not
// supported.
func parseBind(s string) (specgen.Bind, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return specgen.Bind{}, fmt.Errorf("%w: invalid bind %q", ErrInvalid, s)
	}
	b := specgen.Bind{Source: parts[0], Destination: parts[1]}
	if !path.IsAbs(b.Source) {
		return specgen.Bind{}, fmt.Errorf("%w: bind %q: named volumes are not supported; use an absolute host path", ErrInvalid, s)
	}
	if !path.IsAbs(b.Destination) {
		return specgen.Bind{}, fmt.Errorf("%w: bind %q: destination must be absolute", ErrInvalid, s)
	}
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			switch o {
			case "ro":
				b.ReadOnly = true
			case "rw", "z", "Z", "nocopy", "":
			case "private", "rprivate", "shared", "rshared", "slave", "rslave":
				b.Propagation = o
			default:
				return specgen.Bind{}, fmt.Errorf("%w: bind %q: unknown option %q", ErrInvalid, s, o)
			}
		}
	}
	return b, nil
}

// networkNamespace maps a NetworkMode onto specgen's NetworkNamespace.
func networkNamespace(mode string) (string, error) {
	switch mode {
	case "", "default", "bridge", "none":
		return "", nil
	case "host":
		return "host", nil
	}
	return "", fmt.Errorf("%w: network mode %q is not supported", ErrInvalid, mode)
}

// matchFilters reports whether c passes Docker's container filters.
func matchFilters(c *Container, filters map[string][]string) (bool, error) {
	for key, values := range filters {
		switch key {
		case "id", "name", "status", "label", "exited", "ancestor":
		default:
			return false, fmt.Errorf("%w: invalid filter %q", ErrInvalid, key)
		}
		if key == "status" {
			for _, v := range values {
				switch v {
				case StatusCreated, StatusRunning, StatusPaused, StatusRestarting, StatusExited, StatusDead, StatusRemoving:
				default:
					return false, fmt.Errorf("%w: invalid filter 'status=%s'", ErrInvalid, v)
				}
			}
		}
	}
	for key, values := range filters {
		if len(values) == 0 {
			continue
		}
		ok := false
		for _, v := range values {
			var m bool
			switch key {
			case "id":
				m = strings.HasPrefix(c.ID, v)
			case "name":
				m = strings.Contains(strings.TrimPrefix(c.Name, "/"), strings.TrimPrefix(v, "/"))
			case "status":
				m = c.State.Status == v
			case "label":
				k, want, hasValue := strings.Cut(v, "=")
				got, present := c.Config.Labels[k]
				m = present && (!hasValue || got == want)
			case "exited":
				m = c.State.Status == StatusExited && fmt.Sprint(c.State.ExitCode) == v
			case "ancestor":
				m = c.ImageName == v || c.Image == v || strings.HasPrefix(strings.TrimPrefix(c.Image, "sha256:"), v)
			}
			if m {
				ok = true
				break
			}
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}
