package archive

import (
	"errors"
	"testing"
)

func TestCleanName(t *testing.T) {
	tests := []struct {
		in, want string
		unsafe   bool
	}{
		{"a/b", "a/b", false},
		{"./a/b/", "a/b", false},
		{"/etc/passwd", "etc/passwd", false},
		{"//a//b/./c", "a/b/c", false},
		{".", "", false},
		{"/", "", false},
		{"./", "", false},
		{"a/../b", "b", false},
		{"/../x", "", true},
		{"..", "", true},
		{"../x", "", true},
		{"a/../../x", "", true},
		{"../../../etc/passwd", "", true},
		{"a\x00b", "", true},
	}
	for _, tt := range tests {
		got, err := cleanName(tt.in)
		if tt.unsafe {
			if !errors.Is(err, ErrUnsafePath) {
				t.Errorf("cleanName(%q) = %q, %v; want ErrUnsafePath", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestClassifyWhiteout(t *testing.T) {
	tests := []struct {
		base   string
		kind   whiteoutKind
		hidden string
		unsafe bool
	}{
		{"file", notWhiteout, "", false},
		{".whatever", notWhiteout, "", false},
		{".wh.file", whiteoutFile, "file", false},
		{".wh..hidden", whiteoutFile, ".hidden", false},
		{".wh..wh..opq", whiteoutOpaqueD, "", false},
		{".wh..wh.plnk", whiteoutMeta, "", false},
		{".wh.", notWhiteout, "", true},
		{".wh..", notWhiteout, "", true},
		{".wh...", notWhiteout, "", true},
	}
	for _, tt := range tests {
		kind, hidden, err := classifyWhiteout(tt.base)
		if tt.unsafe {
			if !errors.Is(err, ErrUnsafePath) {
				t.Errorf("classifyWhiteout(%q) err = %v; want ErrUnsafePath", tt.base, err)
			}
			continue
		}
		if err != nil || kind != tt.kind || hidden != tt.hidden {
			t.Errorf("classifyWhiteout(%q) = %v, %q, %v; want %v, %q", tt.base, kind, hidden, err, tt.kind, tt.hidden)
		}
	}
}

func TestXattrsFromPAX(t *testing.T) {
	got := xattrsFromPAX(map[string]string{
		"SCHILY.xattr.user.b":                 "2",
		"SCHILY.xattr.user.a":                 "1",
		"SCHILY.xattr.trusted.overlay.opaque": "y",
		"SCHILY.xattr.":                       "x",
		"path":                                "ignored",
	})
	want := []xattr{{"user.a", "1"}, {"user.b", "2"}}
	if len(got) != len(want) {
		t.Fatalf("xattrsFromPAX = %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("xattrsFromPAX = %v; want %v", got, want)
		}
	}
}

func TestLayerNames(t *testing.T) {
	l := layerNames{}
	l.add("a/b/c")
	l.add("a/d")
	for _, n := range []string{"a", "a/b", "a/b/c", "a/d"} {
		if !l.has(n) {
			t.Errorf("has(%q) = false", n)
		}
	}
	for _, n := range []string{"b", "a/c", "a/b/c/d"} {
		if l.has(n) {
			t.Errorf("has(%q) = true", n)
		}
	}
}

func TestIsAUFSMeta(t *testing.T) {
	for name, want := range map[string]bool{
		".wh..wh.plnk":       true,
		".wh..wh.plnk/1234":  true,
		".wh..wh.aufs":       true,
		".wh..wh..opq":       false,
		"a/.wh..wh.plnk/123": false,
		"a":                  false,
		".wh.a":              false,
	} {
		if got := isAUFSMeta(name); got != want {
			t.Errorf("isAUFSMeta(%q) = %v, want %v", name, got, want)
		}
	}
}
