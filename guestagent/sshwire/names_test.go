package sshwire

import (
	"bytes"
	"encoding/binary"
	"testing"

	"golang.org/x/crypto/ssh"
)

// sshString is the SSH wire encoding of a string (RFC 4251, section 5).
func sshString(s string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(s))), s...)
}

func TestOpenPayloads(t *testing.T) {
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	for _, tc := range []struct {
		name string
		msg  any
		want [][]byte
	}{
		{"streamlocal", StreamLocalOpen{SocketPath: "/run/e.sock"}, [][]byte{sshString("/run/e.sock"), sshString(""), u32(0)}},
		{"direct-tcpip", DirectTCPIPOpen{Host: "10.0.0.2", Port: 80, OriginHost: "127.0.0.1", OriginPort: 5},
			[][]byte{sshString("10.0.0.2"), u32(80), sshString("127.0.0.1"), u32(5)}},
		{"udp", UDPOpen{Host: "10.0.0.3", Port: 53}, [][]byte{sshString("10.0.0.3"), u32(53)}},
	} {
		if got, want := ssh.Marshal(tc.msg), bytes.Join(tc.want, nil); !bytes.Equal(got, want) {
			t.Errorf("%s payload = %x, want %x", tc.name, got, want)
		}
	}
	// What one end marshals, the other unmarshals.
	var back DirectTCPIPOpen
	in := DirectTCPIPOpen{Host: "h", Port: 65535, OriginHost: "o", OriginPort: 1}
	if err := ssh.Unmarshal(ssh.Marshal(in), &back); err != nil || back != in {
		t.Fatalf("round trip = %+v, %v", back, err)
	}
}
