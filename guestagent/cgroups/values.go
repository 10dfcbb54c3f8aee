package cgroups

// Pure conversions from OCI resources to cgroup file values, and parsers of
// the counters cgroups expose. No I/O here.

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// fileWrite is one value to write into one cgroup interface file.
type fileWrite struct {
	File  string // e.g. "memory.max"
	Value string
}

// v1Unlimited: cgroup v1 reports "no limit" as a huge number (the page
// counter maximum rounded to pages, 9223372036854771712 with 4 KiB pages);
// anything at or above this is treated as unlimited.
const v1Unlimited = uint64(1) << 62

// defaultCPUPeriod is the kernel's default CFS period in microseconds.
const defaultCPUPeriod = 100000

// parseUint parses a cgroup number; "max" (v2's "no limit") yields 0.
func parseUint(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cgroups: bad number %q: %w", s, ErrInvalid)
	}
	return n, nil
}

// parseLimit parses a limit file: "max" (v2) or a v1 value at or above
// v1Unlimited yields 0, meaning unlimited.
func parseLimit(s string) (uint64, error) {
	n, err := parseUint(s)
	if err != nil {
		return 0, err
	}
	if n >= v1Unlimited {
		return 0, nil
	}
	return n, nil
}

// parseKeyed parses a flat keyed file ("key value" lines, as memory.events,
// cpu.stat or memory.oom_control). Lines whose value is not a number are
// skipped.
func parseKeyed(data []byte) map[string]uint64 {
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		if n, err := strconv.ParseUint(f[1], 10, 64); err == nil {
			out[f[0]] = n
		}
	}
	return out
}

// sharesToWeight converts cgroup v1 cpu.shares ([2, 262144], default 1024)
// to cgroup v2 cpu.weight ([1, 10000], default 100) with the linear mapping
// used across container runtimes: 2 → 1, 262144 → 10000. 0 means unset.
func sharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	shares = min(max(shares, 2), 262144)
	return 1 + ((shares-2)*9999)/262142
}

// cpuMax is the cgroup v2 cpu.max value for an OCI quota and period (both
// microseconds), and whether anything is to be written. A nil or
// non-positive quota means "max" (no limit). When only the period is given,
// the quota becomes "max" as well.
func cpuMax(quota *int64, period *uint64) (string, bool) {
	if quota == nil && (period == nil || *period == 0) {
		return "", false
	}
	q := "max"
	if quota != nil && *quota > 0 {
		q = strconv.FormatInt(*quota, 10)
	}
	if period != nil && *period > 0 {
		return q + " " + strconv.FormatUint(*period, 10), true
	}
	return q, true
}

// limitV2 renders a byte or count limit for v2: negative means "max".
func limitV2(v int64) string {
	if v < 0 {
		return "max"
	}
	return strconv.FormatInt(v, 10)
}

// swapV2 converts OCI's memory.swap (memory plus swap, v1 semantics) to the
// value of v2's memory.swap.max (swap alone). ok is false when nothing is to
// be written.
func swapV2(swap, limit *int64) (val string, ok bool, err error) {
	if swap == nil || *swap == 0 {
		// Unset; but an unlimited memory limit implies unlimited swap, as
		// on v1 where memsw follows.
		if swap == nil && limit != nil && *limit == -1 {
			return "max", true, nil
		}
		return "", false, nil
	}
	if *swap < 0 {
		return "max", true, nil
	}
	if limit == nil || *limit <= 0 {
		return "", false, fmt.Errorf("cgroups: swap limit %d needs a memory limit: %w", *swap, ErrInvalid)
	}
	if *swap < *limit {
		return "", false, fmt.Errorf("cgroups: memory+swap limit %d is below the memory limit %d: %w", *swap, *limit, ErrInvalid)
	}
	return strconv.FormatInt(*swap-*limit, 10), true, nil
}

// planV2 lists the cgroup v2 file writes for res, in order. Device rules
// are not applied: on v2 the devices controller is an eBPF program
// (BPF_CGROUP_DEVICE) and berth does not load one; the runtime gives every
// container a tmpfs /dev with only the standard nodes, so there is nothing
// more to protect for the workloads berth runs.
func planV2(res *specs.LinuxResources) ([]fileWrite, error) {
	var w []fileWrite
	if res == nil {
		return nil, nil
	}
	if m := res.Memory; m != nil {
		if m.Reservation != nil {
			w = append(w, fileWrite{"memory.low", limitV2(*m.Reservation)})
		}
		if m.Limit != nil {
			w = append(w, fileWrite{"memory.max", limitV2(*m.Limit)})
		}
		s, ok, err := swapV2(m.Swap, m.Limit)
		if err != nil {
			return nil, err
		}
		if ok {
			w = append(w, fileWrite{"memory.swap.max", s})
		}
	}
	if c := res.CPU; c != nil {
		if c.Shares != nil && *c.Shares != 0 {
			w = append(w, fileWrite{"cpu.weight", strconv.FormatUint(sharesToWeight(*c.Shares), 10)})
		}
		if v, ok := cpuMax(c.Quota, c.Period); ok {
			w = append(w, fileWrite{"cpu.max", v})
		}
		if c.Cpus != "" {
			w = append(w, fileWrite{"cpuset.cpus", c.Cpus})
		}
		if c.Mems != "" {
			w = append(w, fileWrite{"cpuset.mems", c.Mems})
		}
	}
	if p := res.Pids; p != nil && p.Limit != nil {
		w = append(w, fileWrite{"pids.max", pidsMax(*p.Limit)})
	}
	return w, nil
}

// pidsMax renders pids.max (same syntax on v1 and v2): 0 or negative means
// "max".
func pidsMax(limit int64) string {
	if limit <= 0 {
		return "max"
	}
	return strconv.FormatInt(limit, 10)
}

// v1Plan holds the cgroup v1 writes for each controller, in order.
type v1Plan map[string][]fileWrite

// planV1 lists the cgroup v1 writes for res per controller. Memory limit
// and memsw limit are listed limit first; the caller retries in the other
// order when the kernel refuses (memsw must always be >= the limit).
func planV1(res *specs.LinuxResources) (v1Plan, error) {
	p := v1Plan{}
	if res == nil {
		return p, nil
	}
	if m := res.Memory; m != nil {
		if m.Reservation != nil {
			p["memory"] = append(p["memory"], fileWrite{"memory.soft_limit_in_bytes", strconv.FormatInt(*m.Reservation, 10)})
		}
		if m.Limit != nil {
			p["memory"] = append(p["memory"], fileWrite{"memory.limit_in_bytes", strconv.FormatInt(*m.Limit, 10)})
		}
		if m.Swap != nil && *m.Swap != 0 {
			if *m.Swap > 0 && m.Limit != nil && *m.Limit > 0 && *m.Swap < *m.Limit {
				return nil, fmt.Errorf("cgroups: memory+swap limit %d is below the memory limit %d: %w", *m.Swap, *m.Limit, ErrInvalid)
			}
			p["memory"] = append(p["memory"], fileWrite{"memory.memsw.limit_in_bytes", strconv.FormatInt(*m.Swap, 10)})
		}
		if m.Swappiness != nil {
			if *m.Swappiness > 100 {
				return nil, fmt.Errorf("cgroups: memory swappiness %d is above 100: %w", *m.Swappiness, ErrInvalid)
			}
			p["memory"] = append(p["memory"], fileWrite{"memory.swappiness", strconv.FormatUint(*m.Swappiness, 10)})
		}
		if m.DisableOOMKiller != nil && *m.DisableOOMKiller {
			p["memory"] = append(p["memory"], fileWrite{"memory.oom_control", "1"})
		}
	}
	if b := res.BlockIO; b != nil {
		w, err := blkioV1(b)
		if err != nil {
			return nil, err
		}
		if len(w) > 0 {
			p["blkio"] = w
		}
	}
	if c := res.CPU; c != nil {
		if c.Shares != nil && *c.Shares != 0 {
			p["cpu"] = append(p["cpu"], fileWrite{"cpu.shares", strconv.FormatUint(*c.Shares, 10)})
		}
		if c.Period != nil && *c.Period != 0 {
			p["cpu"] = append(p["cpu"], fileWrite{"cpu.cfs_period_us", strconv.FormatUint(*c.Period, 10)})
		}
		if c.Quota != nil {
			q := *c.Quota
			if q <= 0 {
				q = -1
			}
			p["cpu"] = append(p["cpu"], fileWrite{"cpu.cfs_quota_us", strconv.FormatInt(q, 10)})
		}
		if c.Cpus != "" {
			p["cpuset"] = append(p["cpuset"], fileWrite{"cpuset.cpus", c.Cpus})
		}
		if c.Mems != "" {
			p["cpuset"] = append(p["cpuset"], fileWrite{"cpuset.mems", c.Mems})
		}
	}
	if pl := res.Pids; pl != nil && pl.Limit != nil {
		p["pids"] = append(p["pids"], fileWrite{"pids.max", pidsMax(*pl.Limit)})
	}
	if len(res.Devices) > 0 {
		// Start from "deny everything", then apply the rules in order: the
		// OCI list is an ordered allow/deny list on top of that default.
		d := []fileWrite{{"devices.deny", "a"}}
		for _, r := range res.Devices {
			rule, err := deviceRule(r)
			if err != nil {
				return nil, err
			}
			f := "devices.deny"
			if r.Allow {
				f = "devices.allow"
			}
			d = append(d, fileWrite{f, rule})
		}
		p["devices"] = d
	}
	return p, nil
}

// blkioV1 plans the v1 blkio writes. Weights and throttles are written as
// given; a kernel without the file (no CFQ/BFQ weight support) fails the
// write, and so the container, rather than dropping the limit.
func blkioV1(b *specs.LinuxBlockIO) ([]fileWrite, error) {
	var w []fileWrite
	if b.Weight != nil && *b.Weight != 0 {
		if *b.Weight < 10 || *b.Weight > 1000 {
			return nil, fmt.Errorf("cgroups: blkio weight %d is outside 10..1000: %w", *b.Weight, ErrInvalid)
		}
		w = append(w, fileWrite{"blkio.weight", strconv.FormatUint(uint64(*b.Weight), 10)})
	}
	if b.LeafWeight != nil && *b.LeafWeight != 0 {
		w = append(w, fileWrite{"blkio.leaf_weight", strconv.FormatUint(uint64(*b.LeafWeight), 10)})
	}
	for _, d := range b.WeightDevice {
		if d.Weight != nil {
			w = append(w, fileWrite{"blkio.weight_device", fmt.Sprintf("%d:%d %d", d.Major, d.Minor, *d.Weight)})
		}
		if d.LeafWeight != nil {
			w = append(w, fileWrite{"blkio.leaf_weight_device", fmt.Sprintf("%d:%d %d", d.Major, d.Minor, *d.LeafWeight)})
		}
	}
	for _, t := range []struct {
		file string
		devs []specs.LinuxThrottleDevice
	}{
		{"blkio.throttle.read_bps_device", b.ThrottleReadBpsDevice},
		{"blkio.throttle.write_bps_device", b.ThrottleWriteBpsDevice},
		{"blkio.throttle.read_iops_device", b.ThrottleReadIOPSDevice},
		{"blkio.throttle.write_iops_device", b.ThrottleWriteIOPSDevice},
	} {
		for _, d := range t.devs {
			w = append(w, fileWrite{t.file, fmt.Sprintf("%d:%d %d", d.Major, d.Minor, d.Rate)})
		}
	}
	return w, nil
}

// deviceRule renders an OCI device cgroup rule in the v1 devices.allow /
// devices.deny syntax "type major:minor access", e.g. "c 1:3 rwm". A rule
// of type "a" (or empty) is the catch-all "a".
func deviceRule(r specs.LinuxDeviceCgroup) (string, error) {
	typ := r.Type
	if typ == "" {
		typ = "a"
	}
	switch typ {
	case "a", "b", "c":
	default:
		return "", fmt.Errorf("cgroups: bad device type %q: %w", r.Type, ErrInvalid)
	}
	access := r.Access
	if access == "" {
		access = "rwm"
	}
	for _, ch := range access {
		if ch != 'r' && ch != 'w' && ch != 'm' {
			return "", fmt.Errorf("cgroups: bad device access %q: %w", r.Access, ErrInvalid)
		}
	}
	if typ == "a" {
		// The kernel reads a rule starting with "a" as "all devices, all
		// access" and ignores the rest.
		return "a", nil
	}
	num := func(p *int64) string {
		if p == nil || *p < 0 {
			return "*"
		}
		return strconv.FormatInt(*p, 10)
	}
	return fmt.Sprintf("%s %s:%s %s", typ, num(r.Major), num(r.Minor), access), nil
}
