package kernel

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"os/exec"
	"testing"

	"github.com/berth-dev/berth/vmimage/internal/elftest"
)

func pvhELF(entry uint32) []byte {
	desc := make([]byte, 4)
	binary.LittleEndian.PutUint32(desc, entry)
	return elftest.Executable([]elftest.Note{
		{Name: "Xen", Type: 6, Desc: []byte("linux\x00")},
		{Name: "GNU", Type: 18, Desc: []byte{1, 2, 3, 4}}, // right type, wrong owner
		{Name: "Xen", Type: xenElfnotePhys32Entry, Desc: desc},
	}, bytes.Repeat([]byte{0x90}, 100))
}

// bzImage wraps payload in a minimal boot-protocol header: 1 setup sector
// plus the boot sector, then the protected-mode part holding the payload.
func bzImage(payload []byte) []byte {
	const setupSects = 1
	base := (setupSects + 1) * 512
	img := make([]byte, base+64+len(payload)+4)
	img[offSetupSects] = setupSects
	copy(img[offHeaderMagic:], headerMagic)
	binary.LittleEndian.PutUint16(img[offVersion:], 0x20f)
	binary.LittleEndian.PutUint32(img[offPayloadOff:], 64)
	binary.LittleEndian.PutUint32(img[offPayloadLen:], uint32(len(payload)))
	copy(img[base+64:], payload)
	return img
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestVmlinuxGzipPayload(t *testing.T) {
	elf := pvhELF(0x1000850)
	// The x86 build appends relocations after the ELF; they must go.
	payload := gz(append(append([]byte(nil), elf...), []byte("RELOCS\x00\x00")...))
	p, err := BzImagePayload(bzImage(payload))
	if err != nil || p.Format != "gzip" || !bytes.Equal(p.Data, payload) {
		t.Fatalf("payload %s %d bytes: %v", p.Format, len(p.Data), err)
	}
	vm, err := Vmlinux(context.Background(), bzImage(payload), "")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(vm, elf) {
		t.Fatalf("vmlinux is %d bytes, want the %d-byte ELF", len(vm), len(elf))
	}
	entry, err := PVHEntry(vm)
	if err != nil || entry != 0x1000850 {
		t.Fatalf("PVH entry %#x: %v", entry, err)
	}
}

func TestVmlinuxXZPayload(t *testing.T) {
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("xz not installed")
	}
	elf := pvhELF(0x2000)
	cmd := exec.Command("xz", "-c", "--check=crc32", "--x86", "--lzma2")
	cmd.Stdin = bytes.NewReader(elf)
	payload, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	payload = append(payload, 1, 2, 3, 4) // the appended size word
	vm, err := Vmlinux(context.Background(), bzImage(payload), "")
	if err != nil || !bytes.Equal(vm, elf) {
		t.Fatalf("xz vmlinux %d bytes: %v", len(vm), err)
	}
	if _, err := Vmlinux(context.Background(), bzImage(payload), "/nonexistent/xz"); !errors.Is(err, ErrTool) {
		t.Fatalf("missing tool: %v", err)
	}
}

func TestNoPVHAndBadImages(t *testing.T) {
	noPVH := elftest.Executable([]elftest.Note{{Name: "Xen", Type: 6, Desc: []byte("linux\x00")}}, []byte{1})
	if _, err := PVHEntry(noPVH); !errors.Is(err, ErrNoPVH) {
		t.Fatalf("no PVH note: %v", err)
	}
	if _, err := BzImagePayload(make([]byte, 4096)); !errors.Is(err, ErrFormat) {
		t.Fatalf("no header: %v", err)
	}
	bad := bzImage([]byte("BZh91AY&SY"))
	if _, err := Vmlinux(context.Background(), bad, ""); !errors.Is(err, ErrFormat) {
		t.Fatalf("bzip2 payload: %v", err)
	}
	huge := bzImage([]byte{0x1f, 0x8b})
	binary.LittleEndian.PutUint32(huge[offPayloadLen:], 1<<30)
	if _, err := BzImagePayload(huge); !errors.Is(err, ErrFormat) {
		t.Fatalf("payload beyond image: %v", err)
	}
}

func TestArm64Image(t *testing.T) {
	img := make([]byte, 256)
	copy(img[0x38:], arm64Magic)
	got, err := Arm64Image(gz(img))
	if err != nil || !bytes.Equal(got, img) {
		t.Fatalf("gzip'd Image: %v", err)
	}
	if got, err := Arm64Image(img); err != nil || !bytes.Equal(got, img) {
		t.Fatalf("plain Image: %v", err)
	}
	if _, err := Arm64Image(gz(make([]byte, 256))); !errors.Is(err, ErrFormat) {
		t.Fatalf("no magic: %v", err)
	}
}
