package libct

import (
	"errors"
	"fmt"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Offsets in struct seccomp_data.
const (
	seccompNr   = 0
	seccompArch = 4
	seccompArgs = 16
)

// seccompAction returns the SECCOMP_RET_* value of an OCI action.
func seccompAction(a specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	errno := uint32(unix.EPERM)
	if errnoRet != nil {
		errno = uint32(*errnoRet)
	}
	switch a {
	case specs.ActKill, specs.ActKillThread:
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case specs.ActKillProcess:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case specs.ActTrap:
		return unix.SECCOMP_RET_TRAP, nil
	case specs.ActErrno:
		return unix.SECCOMP_RET_ERRNO | errno&unix.SECCOMP_RET_DATA, nil
	case specs.ActTrace:
		return unix.SECCOMP_RET_TRACE | errno&unix.SECCOMP_RET_DATA, nil
	case specs.ActAllow:
		return unix.SECCOMP_RET_ALLOW, nil
	case specs.ActLog:
		return unix.SECCOMP_RET_LOG, nil
	}
	return 0, fmt.Errorf("seccomp action %q: %w", a, ErrInvalidSpec)
}

// bpfProg is a classic BPF program under construction; jumps to labels are
// resolved by resolve.
type bpfProg struct {
	ins    []unix.SockFilter
	labels map[string]int
	fixups map[int][2]string // instruction → labels of jt and jf ("" = next)
}

func (p *bpfProg) stmt(code uint16, k uint32) {
	p.ins = append(p.ins, unix.SockFilter{Code: code, K: k})
}

// jump adds a conditional jump to labels jt/jf ("" falls through).
func (p *bpfProg) jump(code uint16, k uint32, jt, jf string) {
	p.fixups[len(p.ins)] = [2]string{jt, jf}
	p.ins = append(p.ins, unix.SockFilter{Code: code, K: k})
}

func (p *bpfProg) label(name string) { p.labels[name] = len(p.ins) }

func (p *bpfProg) resolve() error {
	for i, l := range p.fixups {
		for j, name := range l {
			if name == "" {
				continue
			}
			target, ok := p.labels[name]
			if !ok {
				return fmt.Errorf("seccomp: undefined label %s", name)
			}
			off := target - i - 1
			if off < 0 || off > 255 {
				return fmt.Errorf("seccomp: jump of %d instructions", off)
			}
			if j == 0 {
				p.ins[i].Jt = uint8(off)
			} else {
				p.ins[i].Jf = uint8(off)
			}
		}
	}
	return nil
}

// compileSeccomp turns an OCI seccomp profile into a BPF filter for the
// architecture whose AUDIT_ARCH is arch and whose syscall numbers are nrs.
// Syscalls unknown on this architecture are skipped (as libseccomp does).
// Calls made under another architecture (32-bit compat) get the default
// action.
func compileSeccomp(s *specs.LinuxSeccomp, arch uint32, nrs map[string]uint32) ([]unix.SockFilter, error) {
	if arch == 0 || nrs == nil {
		return nil, fmt.Errorf("seccomp on this architecture: %w", ErrNotSupported)
	}
	def, err := seccompAction(s.DefaultAction, s.DefaultErrnoRet)
	if err != nil {
		return nil, err
	}
	p := &bpfProg{labels: map[string]int{}, fixups: map[int][2]string{}}
	p.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, seccompArch)
	p.jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, arch, "native", "")
	p.stmt(unix.BPF_RET|unix.BPF_K, def)
	p.label("native")
	p.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, seccompNr)
	n := 0
	for _, rule := range s.Syscalls {
		act, err := seccompAction(rule.Action, rule.ErrnoRet)
		if err != nil {
			return nil, err
		}
		if act == def && len(rule.Args) == 0 {
			continue
		}
		for _, name := range rule.Names {
			nr, ok := nrs[name]
			if !ok {
				continue
			}
			n++
			next := fmt.Sprintf("next%d", n)
			p.jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, nr, "", next)
			for _, a := range rule.Args {
				if err := compileArg(p, a, next); err != nil {
					return nil, err
				}
			}
			p.stmt(unix.BPF_RET|unix.BPF_K, act)
			p.label(next)
			if len(rule.Args) > 0 {
				// The argument checks clobbered the accumulator.
				p.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, seccompNr)
			}
		}
	}
	p.stmt(unix.BPF_RET|unix.BPF_K, def)
	if err := p.resolve(); err != nil {
		return nil, err
	}
	if len(p.ins) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp filter of %d instructions is too long", len(p.ins))
	}
	return p.ins, nil
}

// compileArg adds the test of one argument condition; a failed test jumps
// to fail. Arguments are 64-bit: the high word is compared first.
func compileArg(p *bpfProg, a specs.LinuxSeccompArg, fail string) error {
	if a.Index > 5 {
		return fmt.Errorf("seccomp argument index %d: %w", a.Index, ErrInvalidSpec)
	}
	lo := uint32(seccompArgs + 8*a.Index)
	hi := lo + 4 // little-endian (amd64, arm64)
	vlo, vhi := uint32(a.Value), uint32(a.Value>>32)
	ld := func(off uint32) { p.stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, off) }
	id := fmt.Sprintf("a%d_%d", len(p.ins), a.Index)
	ok, loCmp := id+"ok", id+"lo"
	jeq := uint16(unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K)
	switch a.Op {
	case specs.OpEqualTo:
		ld(hi)
		p.jump(jeq, vhi, "", fail)
		ld(lo)
		p.jump(jeq, vlo, "", fail)
	case specs.OpNotEqual:
		ld(hi)
		p.jump(jeq, vhi, "", ok)
		ld(lo)
		p.jump(jeq, vlo, fail, "")
		p.label(ok)
	case specs.OpMaskedEqual:
		// (arg & Value) == ValueTwo
		ld(hi)
		p.stmt(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, vhi)
		p.jump(jeq, uint32(a.ValueTwo>>32), "", fail)
		ld(lo)
		p.stmt(unix.BPF_ALU|unix.BPF_AND|unix.BPF_K, vlo)
		p.jump(jeq, uint32(a.ValueTwo), "", fail)
	case specs.OpGreaterThan, specs.OpGreaterEqual, specs.OpLessThan, specs.OpLessEqual:
		// Unsigned 64-bit order: decided by the high words unless equal.
		jgt := uint16(unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K)
		jge := uint16(unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K)
		ld(hi)
		switch a.Op {
		case specs.OpGreaterThan, specs.OpGreaterEqual:
			p.jump(jgt, vhi, ok, "")
			p.jump(jeq, vhi, loCmp, fail)
		default:
			p.jump(jgt, vhi, fail, "")
			p.jump(jeq, vhi, loCmp, ok)
		}
		p.label(loCmp)
		ld(lo)
		switch a.Op {
		case specs.OpGreaterThan:
			p.jump(jgt, vlo, "", fail)
		case specs.OpGreaterEqual:
			p.jump(jge, vlo, "", fail)
		case specs.OpLessThan:
			p.jump(jge, vlo, fail, "")
		case specs.OpLessEqual:
			p.jump(jgt, vlo, fail, "")
		}
		p.label(ok)
	default:
		return fmt.Errorf("seccomp operator %q: %w", a.Op, ErrInvalidSpec)
	}
	return nil
}

// installSeccomp loads the filter on the calling thread (the one that will
// execve, so the user process inherits it).
func installSeccomp(filter []unix.SockFilter) error {
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	_, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog)))
	if e != 0 {
		if errors.Is(e, unix.EINVAL) || errors.Is(e, unix.ENOSYS) {
			// Kernels without seccomp(2): the prctl interface.
			if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
				return fmt.Errorf("install seccomp filter: %w", err)
			}
			return nil
		}
		return fmt.Errorf("install seccomp filter: %w", e)
	}
	return nil
}
