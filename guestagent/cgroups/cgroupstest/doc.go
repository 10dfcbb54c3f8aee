// Package cgroupstest helps root tests leave the machine's cgroup tree as
// they found it: container cgroups live in <own cgroup>/<parent>/<id>, and a
// parent that a test run created must go when the run ends.
package cgroupstest
