package archive

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestDecompress(t *testing.T) {
	plain := buildTar(t, dir("d/"), file("d/f", "hello, layer"), symlink("d/l", "f"))
	gz := func() []byte {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write(plain)
		w.Close()
		return b.Bytes()
	}()
	zs := func() []byte {
		var b bytes.Buffer
		w, err := zstd.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(plain)
		w.Close()
		return b.Bytes()
	}()
	tests := []struct {
		name string
		in   []byte
		want []byte
	}{
		{"plain", plain, plain},
		{"gzip", gz, plain},
		{"zstd", zs, plain},
		{"empty", nil, nil},
		{"short", []byte{0x1f}, []byte{0x1f}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := Decompress(bytes.NewReader(tt.in))
			if err != nil {
				t.Fatalf("Decompress: %v", err)
			}
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if err := rc.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
	t.Run("corrupt gzip", func(t *testing.T) {
		rc, err := Decompress(bytes.NewReader([]byte{0x1f, 0x8b, 0, 0, 0}))
		if err == nil {
			_, err = io.ReadAll(rc)
		}
		if err == nil {
			t.Fatal("corrupt gzip: no error")
		}
	})
}
