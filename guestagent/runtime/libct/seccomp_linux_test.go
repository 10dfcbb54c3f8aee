package libct

import (
	"errors"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// runBPF interprets the subset of classic BPF that compileSeccomp emits
// over a seccomp_data of nr, arch and args.
func runBPF(t *testing.T, prog []unix.SockFilter, nr, arch uint32, args [6]uint64) uint32 {
	t.Helper()
	word := func(off uint32) uint32 {
		switch {
		case off == seccompNr:
			return nr
		case off == seccompArch:
			return arch
		case off >= seccompArgs && off < seccompArgs+48:
			i := (off - seccompArgs) / 8
			if (off-seccompArgs)%8 == 0 {
				return uint32(args[i])
			}
			return uint32(args[i] >> 32)
		}
		t.Fatalf("load of offset %d", off)
		return 0
	}
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			a = word(in.K)
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			a &= in.K
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			var cond bool
			switch in.Code &^ (unix.BPF_JMP | unix.BPF_K) {
			case unix.BPF_JEQ:
				cond = a == in.K
			case unix.BPF_JGT:
				cond = a > in.K
			case unix.BPF_JGE:
				cond = a >= in.K
			}
			if cond {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		default:
			t.Fatalf("unexpected instruction %#x", in.Code)
		}
	}
	t.Fatal("program fell off its end")
	return 0
}

func TestCompileSeccomp(t *testing.T) {
	const arch = 0xc000003e
	nrs := map[string]uint32{"read": 0, "write": 1, "mkdir": 83, "kill": 62, "personality": 135, "clone": 56}
	eperm := uint(unix.EPERM)
	enosys := uint(unix.ENOSYS)
	prof := &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: &enosys,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write", "nosuch_call"}, Action: specs.ActAllow},
			{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: &eperm},
			{Names: []string{"kill"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 1, Value: 9, Op: specs.OpNotEqual}}},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0xffffffff, Op: specs.OpLessEqual}}},
			{Names: []string{"clone"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0x7e020000, ValueTwo: 0, Op: specs.OpMaskedEqual}}},
		},
	}
	prog, err := compileSeccomp(prof, arch, nrs)
	if err != nil {
		t.Fatal(err)
	}
	allow := uint32(unix.SECCOMP_RET_ALLOW)
	deny := uint32(unix.SECCOMP_RET_ERRNO) | uint32(unix.ENOSYS)
	cases := []struct {
		name string
		nr   uint32
		arch uint32
		args [6]uint64
		want uint32
	}{
		{"read", 0, arch, [6]uint64{}, allow},
		{"write", 1, arch, [6]uint64{}, allow},
		{"unlisted", 2, arch, [6]uint64{}, deny},
		{"other arch", 0, 0x40000003, [6]uint64{}, deny},
		{"mkdir", 83, arch, [6]uint64{}, unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{"kill 15", 62, arch, [6]uint64{1, 15}, allow},
		{"kill 9", 62, arch, [6]uint64{1, 9}, deny},
		{"kill 9+2^32", 62, arch, [6]uint64{1, 9 | 1<<32}, allow},
		{"personality small", 135, arch, [6]uint64{8}, allow},
		{"personality max", 135, arch, [6]uint64{0xffffffff}, allow},
		{"personality big", 135, arch, [6]uint64{1 << 32}, deny},
		{"clone plain", 56, arch, [6]uint64{0x11}, allow},
		{"clone newns", 56, arch, [6]uint64{unix.CLONE_NEWNS | 0x11}, deny},
	}
	for _, c := range cases {
		if got := runBPF(t, prog, c.nr, c.arch, c.args); got != c.want {
			t.Errorf("%s: %#x, want %#x", c.name, got, c.want)
		}
	}
	for _, op := range []struct {
		op         specs.LinuxSeccompOperator
		val, arg   uint64
		wantAllows bool
	}{
		{specs.OpGreaterThan, 5, 6, true}, {specs.OpGreaterThan, 5, 5, false}, {specs.OpGreaterThan, 5, 1 << 33, true},
		{specs.OpGreaterEqual, 5, 5, true}, {specs.OpGreaterEqual, 5, 4, false},
		{specs.OpLessThan, 5, 4, true}, {specs.OpLessThan, 5, 5, false}, {specs.OpLessThan, 1 << 33, 5, true},
		{specs.OpLessEqual, 5, 5, true}, {specs.OpLessEqual, 5, 6, false},
		{specs.OpEqualTo, 1<<40 | 3, 1<<40 | 3, true}, {specs.OpEqualTo, 1<<40 | 3, 3, false},
	} {
		p := &specs.LinuxSeccomp{DefaultAction: specs.ActKillProcess, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 2, Value: op.val, Op: op.op}}}}}
		prog, err := compileSeccomp(p, arch, nrs)
		if err != nil {
			t.Fatal(err)
		}
		got := runBPF(t, prog, 0, arch, [6]uint64{0, 0, op.arg}) == allow
		if got != op.wantAllows {
			t.Errorf("%s %d with %d: allowed %v", op.op, op.val, op.arg, got)
		}
	}
	if _, err := compileSeccomp(&specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_NOPE"}, arch, nrs); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("bad action: %v", err)
	}
	if _, err := compileSeccomp(prof, 0, nil); !errors.Is(err, ErrNotSupported) {
		t.Errorf("no table: %v", err)
	}
}
