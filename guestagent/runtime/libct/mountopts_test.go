package libct

import "testing"

func TestParseMountOptions(t *testing.T) {
	cases := []struct {
		opts []string
		want mountOpts
	}{
		{nil, mountOpts{}},
		{[]string{"nosuid", "noexec", "nodev", "ro"}, mountOpts{Flags: msNosuid | msNoexec | msNodev | msRdonly}},
		{[]string{"rbind", "rprivate", "ro"}, mountOpts{Flags: msBind | msRec | msRdonly, Propagation: msPrivate | msRec}},
		{[]string{"bind", "shared"}, mountOpts{Flags: msBind, Propagation: msShared}},
		{[]string{"ro", "rw"}, mountOpts{ClearFlags: msRdonly}},
		{[]string{"nosuid", "strictatime", "mode=755", "size=65536k"}, mountOpts{Flags: msNosuid | msStrictatime, Data: "mode=755,size=65536k"}},
		{[]string{"newinstance", "ptmxmode=0666", "mode=0620", "gid=5", "noexec"}, mountOpts{Flags: msNoexec, Data: "newinstance,ptmxmode=0666,mode=0620,gid=5"}},
		{[]string{"defaults", "tmpcopyup", "rslave"}, mountOpts{Propagation: msSlave | msRec}},
		{[]string{"noatime", "atime"}, mountOpts{ClearFlags: msNoatime}},
		{[]string{"rbind", "rro", "rnosuid", "rexec"}, mountOpts{Flags: msBind | msRec, RecSet: attrRdonly | attrNosuid, RecClear: attrNoexec}},
		{[]string{"rro", "rrw"}, mountOpts{RecClear: attrRdonly}},
	}
	for _, c := range cases {
		if got := parseMountOptions(c.opts); got != c.want {
			t.Errorf("parseMountOptions(%q) = %+v, want %+v", c.opts, got, c.want)
		}
	}
	if !isBind("bind", mountOpts{}) || !isBind("none", mountOpts{Flags: msBind}) || isBind("tmpfs", mountOpts{}) {
		t.Error("isBind")
	}
}
