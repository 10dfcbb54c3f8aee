package kernel

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os/exec"

	"github.com/klauspost/compress/zstd"
)

// Sentinel errors.
var (
	// ErrFormat: the input is not the kind of kernel image expected.
	ErrFormat = errors.New("kernel: unrecognised image")
	// ErrNoPVH: the ELF lacks the PVH entry note.
	ErrNoPVH = errors.New("kernel: no PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY)")
	// ErrTool: an external decompressor is missing or failed.
	ErrTool = errors.New("kernel: decompressor tool")
)

// Setup header fields of the x86 boot protocol (Documentation/arch/x86/boot.rst).
const (
	offSetupSects   = 0x1f1
	offHeaderMagic  = 0x202
	offVersion      = 0x206
	offPayloadOff   = 0x248
	offPayloadLen   = 0x24c
	headerMagic     = "HdrS"
	minPayloadProto = 0x208
)

// Payload is the compressed kernel inside a bzImage.
type Payload struct {
	Data   []byte // compressed bytes (including any appended size word)
	Format string // "gzip", "xz", "zstd", "lz4", "lzma", "lzo", "bzip2" or "unknown"
}

// BzImagePayload locates the compressed kernel in an x86 bzImage.
func BzImagePayload(bz []byte) (Payload, error) {
	if len(bz) < 0x250 || string(bz[offHeaderMagic:offHeaderMagic+4]) != headerMagic {
		return Payload{}, fmt.Errorf("%w: no bzImage setup header", ErrFormat)
	}
	if v := binary.LittleEndian.Uint16(bz[offVersion:]); v < minPayloadProto {
		return Payload{}, fmt.Errorf("%w: boot protocol %#x has no payload fields", ErrFormat, v)
	}
	setup := int(bz[offSetupSects])
	if setup == 0 {
		setup = 4
	}
	base := (setup + 1) * 512
	off := base + int(binary.LittleEndian.Uint32(bz[offPayloadOff:]))
	n := int(binary.LittleEndian.Uint32(bz[offPayloadLen:]))
	if off < base || n <= 0 || off+n > len(bz) {
		return Payload{}, fmt.Errorf("%w: payload %d+%d outside image of %d bytes", ErrFormat, off, n, len(bz))
	}
	data := bz[off : off+n]
	return Payload{Data: data, Format: sniff(data)}, nil
}

func sniff(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return "gzip"
	case bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return "xz"
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd"
	case bytes.HasPrefix(b, []byte{0x02, 0x21, 0x4c, 0x18}):
		return "lz4"
	case bytes.HasPrefix(b, []byte{0x5d, 0, 0}):
		return "lzma"
	case bytes.HasPrefix(b, []byte{0x89, 'L', 'Z', 'O'}):
		return "lzo"
	case bytes.HasPrefix(b, []byte("BZh")):
		return "bzip2"
	}
	return "unknown"
}

// Vmlinux extracts the kernel ELF from an x86 bzImage. xz payloads are
// decoded by running xzTool ("xz" when empty); others in Go.
func Vmlinux(ctx context.Context, bz []byte, xzTool string) ([]byte, error) {
	p, err := BzImagePayload(bz)
	if err != nil {
		return nil, err
	}
	var raw []byte
	switch p.Format {
	case "gzip":
		z, err := gzip.NewReader(bytes.NewReader(p.Data))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip payload: %v", ErrFormat, err)
		}
		z.Multistream(false)
		raw, err = io.ReadAll(z)
		if err != nil {
			return nil, fmt.Errorf("%w: gzip payload: %v", ErrFormat, err)
		}
	case "zstd":
		z, err := zstd.NewReader(bytes.NewReader(trimSizeWord(p.Data)), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<31))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd payload: %v", ErrFormat, err)
		}
		raw, err = io.ReadAll(z)
		z.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: zstd payload: %v", ErrFormat, err)
		}
	case "xz":
		if xzTool == "" {
			xzTool = "xz"
		}
		cmd := exec.CommandContext(ctx, xzTool, "-dc", "--single-stream")
		cmd.Stdin = bytes.NewReader(p.Data)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		raw, err = cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("%w: %s -dc: %v: %s", ErrTool, xzTool, err, bytes.TrimSpace(stderr.Bytes()))
		}
	default:
		return nil, fmt.Errorf("%w: %s-compressed payload is not supported", ErrFormat, p.Format)
	}
	return TrimELF(raw)
}

// trimSizeWord drops the little-endian uncompressed-size word that the
// kernel build appends after the compressed stream, when the stream decoder
// would otherwise take it for a second frame.
func trimSizeWord(b []byte) []byte {
	if len(b) > 4 {
		return b[:len(b)-4]
	}
	return b
}

// TrimELF returns the ELF at the start of b cut to its own length (the end
// of the furthest section, segment or header table), dropping data appended
// after it (the x86 build appends relocations to vmlinux.bin).
func TrimELF(b []byte) ([]byte, error) {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: decompressed kernel is not an ELF: %v", ErrFormat, err)
	}
	defer f.Close()
	end := uint64(0)
	grow := func(x uint64) {
		if x > end {
			end = x
		}
	}
	for _, p := range f.Progs {
		grow(p.Off + p.Filesz)
	}
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NOBITS {
			grow(s.Offset + s.FileSize)
		}
	}
	var shoff uint64
	var shnum, shentsize uint16
	if f.Class == elf.ELFCLASS64 && len(b) >= 64 {
		shoff = f.ByteOrder.Uint64(b[0x28:])
		shentsize = f.ByteOrder.Uint16(b[0x3a:])
		shnum = f.ByteOrder.Uint16(b[0x3c:])
	}
	grow(shoff + uint64(shnum)*uint64(shentsize))
	if end == 0 || end > uint64(len(b)) {
		return nil, fmt.Errorf("%w: ELF extends to %d beyond %d bytes", ErrFormat, end, len(b))
	}
	return b[:end], nil
}

// xenElfnotePhys32Entry is XEN_ELFNOTE_PHYS32_ENTRY from xen/interface/elfnote.h.
const xenElfnotePhys32Entry = 18

// PVHEntry returns the 32-bit physical PVH entry point of a kernel ELF, or
// ErrNoPVH.
func PVHEntry(vmlinux []byte) (uint32, error) {
	f, err := elf.NewFile(bytes.NewReader(vmlinux))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return 0, fmt.Errorf("%w: note segment: %v", ErrFormat, err)
		}
		for len(b) >= 12 {
			namesz := f.ByteOrder.Uint32(b[0:])
			descsz := f.ByteOrder.Uint32(b[4:])
			typ := f.ByteOrder.Uint32(b[8:])
			nameEnd := 12 + align4(namesz)
			descEnd := nameEnd + align4(descsz)
			if uint64(descEnd) > uint64(len(b)) {
				break
			}
			name := string(bytes.TrimRight(b[12:12+namesz], "\x00"))
			if name == "Xen" && typ == xenElfnotePhys32Entry && descsz >= 4 {
				return f.ByteOrder.Uint32(b[nameEnd:]), nil
			}
			b = b[descEnd:]
		}
	}
	return 0, ErrNoPVH
}

func align4(n uint32) uint32 { return (n + 3) &^ 3 }

// arm64 Image header: "ARM\x64" at offset 0x38.
const arm64Magic = "ARM\x64"

// Arm64Image returns the uncompressed arm64 Image of a Debian vmlinuz (a
// gzip'd Image; an already uncompressed Image is returned as is).
func Arm64Image(vmlinuz []byte) ([]byte, error) {
	img := vmlinuz
	if bytes.HasPrefix(vmlinuz, []byte{0x1f, 0x8b}) {
		z, err := gzip.NewReader(bytes.NewReader(vmlinuz))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrFormat, err)
		}
		z.Multistream(false)
		img, err = io.ReadAll(z)
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrFormat, err)
		}
	}
	if len(img) < 0x40 || string(img[0x38:0x3c]) != arm64Magic {
		return nil, fmt.Errorf("%w: no arm64 Image magic", ErrFormat)
	}
	return img, nil
}
