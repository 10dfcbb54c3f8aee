package libct

import "strings"

// Linux mount(2) flags, spelled out so that option parsing is a pure
// function that is unit-tested on every OS (mount_linux_test.go checks them
// against golang.org/x/sys/unix).
const (
	msRdonly      = 0x1
	msNosuid      = 0x2
	msNodev       = 0x4
	msNoexec      = 0x8
	msSynchronous = 0x10
	msRemount     = 0x20
	msMandlock    = 0x40
	msDirsync     = 0x80
	msNoatime     = 0x400
	msNodiratime  = 0x800
	msBind        = 0x1000
	msMove        = 0x2000
	msRec         = 0x4000
	msSilent      = 0x8000
	msUnbindable  = 0x20000
	msPrivate     = 0x40000
	msSlave       = 0x80000
	msShared      = 0x100000
	msRelatime    = 0x200000
	msIversion    = 0x800000
	msStrictatime = 0x1000000
	msLazytime    = 0x2000000
)

// mount_setattr(2) attributes, for the recursive options (rro, rnosuid, …).
const (
	attrRdonly = 0x1
	attrNosuid = 0x2
	attrNodev  = 0x4
	attrNoexec = 0x8
)

// mountOpts is the parsed form of an OCI mount's options.
type mountOpts struct {
	Flags       uintptr // flags for mount(2); msBind|msRec for rbind
	ClearFlags  uintptr // flags explicitly turned off (rw, suid, …)
	Propagation uintptr // one of msPrivate|msSlave|msShared|msUnbindable, maybe |msRec; 0 if none
	RecSet      uint64  // mount attributes to set on the whole tree (rro, …)
	RecClear    uint64  // mount attributes to clear on the whole tree (rrw, …)
	Data        string  // filesystem-specific options, comma separated
}

// recursiveOpts maps the recursive options to a mount attribute, set
// (clear=false) or cleared.
var recursiveOpts = map[string]struct {
	clear bool
	attr  uint64
}{
	"rro": {false, attrRdonly}, "rrw": {true, attrRdonly},
	"rnosuid": {false, attrNosuid}, "rsuid": {true, attrNosuid},
	"rnodev": {false, attrNodev}, "rdev": {true, attrNodev},
	"rnoexec": {false, attrNoexec}, "rexec": {true, attrNoexec},
}

// flagOpts maps option names to the flag they set (clear=false) or clear.
var flagOpts = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro": {false, msRdonly}, "rw": {true, msRdonly},
	"nosuid": {false, msNosuid}, "suid": {true, msNosuid},
	"nodev": {false, msNodev}, "dev": {true, msNodev},
	"noexec": {false, msNoexec}, "exec": {true, msNoexec},
	"sync": {false, msSynchronous}, "async": {true, msSynchronous},
	"dirsync": {false, msDirsync},
	"remount": {false, msRemount},
	"mand":    {false, msMandlock}, "nomand": {true, msMandlock},
	"noatime": {false, msNoatime}, "atime": {true, msNoatime},
	"nodiratime": {false, msNodiratime}, "diratime": {true, msNodiratime},
	"relatime": {false, msRelatime}, "norelatime": {true, msRelatime},
	"strictatime": {false, msStrictatime}, "nostrictatime": {true, msStrictatime},
	"lazytime": {false, msLazytime}, "nolazytime": {true, msLazytime},
	"iversion": {false, msIversion}, "noiversion": {true, msIversion},
	"silent": {false, msSilent}, "loud": {true, msSilent},
	"bind": {false, msBind}, "rbind": {false, msBind | msRec},
}

// propagationFlags maps propagation option names (also used for
// linux.rootfsPropagation) to mount(2) flags.
var propagationFlags = map[string]uintptr{
	"private": msPrivate, "rprivate": msPrivate | msRec,
	"shared": msShared, "rshared": msShared | msRec,
	"slave": msSlave, "rslave": msSlave | msRec,
	"unbindable": msUnbindable, "runbindable": msUnbindable | msRec,
}

// ignoredOpts are options of other runtimes or of mount(8) that have no
// kernel meaning here.
var ignoredOpts = map[string]bool{"defaults": true, "tmpcopyup": true, "idmap": true, "ridmap": true,
	"norecursive": true}

// parseMountOptions turns OCI mount options into flags and data.
func parseMountOptions(options []string) mountOpts {
	var o mountOpts
	var data []string
	for _, opt := range options {
		if f, ok := flagOpts[opt]; ok {
			if f.clear {
				o.Flags &^= f.flag
				o.ClearFlags |= f.flag
			} else {
				o.Flags |= f.flag
				o.ClearFlags &^= f.flag
			}
			continue
		}
		if r, ok := recursiveOpts[opt]; ok {
			if r.clear {
				o.RecSet &^= r.attr
				o.RecClear |= r.attr
			} else {
				o.RecSet |= r.attr
				o.RecClear &^= r.attr
			}
			continue
		}
		if p, ok := propagationFlags[opt]; ok {
			o.Propagation = p
			continue
		}
		if ignoredOpts[opt] {
			continue
		}
		data = append(data, opt)
	}
	o.Data = strings.Join(data, ",")
	return o
}

// isBind reports whether an OCI mount is a bind mount.
func isBind(typ string, o mountOpts) bool {
	return typ == "bind" || o.Flags&msBind != 0
}
