// Package elftest writes tiny little-endian ELF64 files for tests: a kernel
// module with a .modinfo section, or a kernel with a PT_NOTE segment.
package elftest

import (
	"bytes"
	"encoding/binary"
)

const (
	ehdrSize = 64
	phdrSize = 56
	shdrSize = 64
)

func header(b *bytes.Buffer, typ, machine uint16, phoff, shoff uint64, phnum, shnum, shstrndx uint16) {
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	le := binary.LittleEndian
	var h [48]byte
	le.PutUint16(h[0:], typ)
	le.PutUint16(h[2:], machine)
	le.PutUint32(h[4:], 1)
	le.PutUint64(h[8:], 0) // entry
	le.PutUint64(h[16:], phoff)
	le.PutUint64(h[24:], shoff)
	le.PutUint32(h[32:], 0)
	le.PutUint16(h[36:], ehdrSize)
	le.PutUint16(h[38:], phdrSize)
	le.PutUint16(h[40:], phnum)
	le.PutUint16(h[42:], shdrSize)
	le.PutUint16(h[44:], shnum)
	le.PutUint16(h[46:], shstrndx)
	b.Write(h[:])
}

// Module returns a relocatable ELF (like a .ko) whose .modinfo section holds
// the given key=value pairs.
func Module(kv ...string) []byte {
	var modinfo bytes.Buffer
	for _, s := range kv {
		modinfo.WriteString(s)
		modinfo.WriteByte(0)
	}
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	dataOff := uint64(ehdrSize)
	strOff := dataOff + uint64(modinfo.Len())
	shoff := (strOff + uint64(len(shstr)) + 7) &^ 7
	var b bytes.Buffer
	header(&b, 1 /* ET_REL */, 62 /* x86-64 */, 0, shoff, 0, 3, 2)
	b.Write(modinfo.Bytes())
	b.Write(shstr)
	for uint64(b.Len()) < shoff {
		b.WriteByte(0)
	}
	le := binary.LittleEndian
	sh := func(name uint32, typ uint32, off, size uint64) {
		var s [shdrSize]byte
		le.PutUint32(s[0:], name)
		le.PutUint32(s[4:], typ)
		le.PutUint64(s[24:], off)
		le.PutUint64(s[32:], size)
		le.PutUint64(s[48:], 1)
		b.Write(s[:])
	}
	sh(0, 0, 0, 0)
	sh(1, 1 /* PROGBITS */, dataOff, uint64(modinfo.Len()))
	sh(10, 3 /* STRTAB */, strOff, uint64(len(shstr)))
	return b.Bytes()
}

// Note is one ELF note.
type Note struct {
	Name string
	Type uint32
	Desc []byte
}

// Executable returns an executable ELF with one PT_NOTE segment holding
// notes, followed by body bytes inside a PT_LOAD segment.
func Executable(notes []Note, body []byte) []byte {
	le := binary.LittleEndian
	var nb bytes.Buffer
	align := func() {
		for nb.Len()%4 != 0 {
			nb.WriteByte(0)
		}
	}
	for _, n := range notes {
		var h [12]byte
		le.PutUint32(h[0:], uint32(len(n.Name)+1))
		le.PutUint32(h[4:], uint32(len(n.Desc)))
		le.PutUint32(h[8:], n.Type)
		nb.Write(h[:])
		nb.WriteString(n.Name)
		nb.WriteByte(0)
		align()
		nb.Write(n.Desc)
		align()
	}
	noteOff := uint64(ehdrSize + 2*phdrSize)
	bodyOff := noteOff + uint64(nb.Len())
	var b bytes.Buffer
	header(&b, 2 /* ET_EXEC */, 62, ehdrSize, 0, 2, 0, 0)
	ph := func(typ uint32, off, size uint64) {
		var p [phdrSize]byte
		le.PutUint32(p[0:], typ)
		le.PutUint32(p[4:], 4)
		le.PutUint64(p[8:], off)
		le.PutUint64(p[16:], 0x1000000+off)
		le.PutUint64(p[24:], 0x1000000+off)
		le.PutUint64(p[32:], size)
		le.PutUint64(p[40:], size)
		le.PutUint64(p[48:], 4)
		b.Write(p[:])
	}
	ph(4 /* PT_NOTE */, noteOff, uint64(nb.Len()))
	ph(1 /* PT_LOAD */, bodyOff, uint64(len(body)))
	b.Write(nb.Bytes())
	b.Write(body)
	return b.Bytes()
}
