package sshwire

import (
	"encoding/binary"
	"io"
)

// MaxDatagram is the largest datagram a ChannelUDP frame carries (its length is a uint16).
const MaxDatagram = 1<<16 - 1

// DatagramHeaderLen is the length of a frame's header: the datagram's length, big-endian.
const DatagramHeaderLen = 2

// PutDatagramHeader writes the header of an n-byte datagram to frame[:DatagramHeaderLen], so that a datagram
// read into frame[DatagramHeaderLen:] goes out as frame[:DatagramHeaderLen+n] without a copy. n must not
// exceed MaxDatagram.
func PutDatagramHeader(frame []byte, n int) {
	binary.BigEndian.PutUint16(frame, uint16(n))
}

// AppendDatagram appends the frame of datagram b to dst and returns the extended slice. len(b) must not
// exceed MaxDatagram.
func AppendDatagram(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

// ReadDatagram reads one frame from r into b and returns the datagram's length in b. A datagram longer than
// b is truncated and its rest discarded, as a UDP socket does. It returns io.EOF if r ends between frames
// and io.ErrUnexpectedEOF if r ends inside one.
func ReadDatagram(r io.Reader, b []byte) (int, error) {
	var hdr [DatagramHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	m := min(n, len(b))
	if _, err := io.ReadFull(r, b[:m]); err != nil {
		return 0, unexpectedEOF(err)
	}
	if n > m {
		if _, err := io.CopyN(io.Discard, r, int64(n-m)); err != nil {
			return 0, unexpectedEOF(err)
		}
	}
	return m, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
