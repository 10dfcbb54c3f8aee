//go:build !linux

package container

import specs "github.com/opencontainers/runtime-spec/specs-go"

func fitRlimits(spec *specs.Spec) {}
