package imagetest

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestBusyboxRoundTripsThroughRegistry(t *testing.T) {
	img, err := Busybox("httpd", "-f")
	if err != nil {
		t.Skip(err) // busybox-static missing: the message says how to install it
	}
	reg := NewRegistry()
	defer reg.Close()
	ref, err := Push(reg.Host, "test/busybox:1", img)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Fatalf("digest %s, want %s", d, want)
	}
	cf, err := got.ConfigFile()
	if err != nil || cf.Config.Cmd[0] != "httpd" || cf.OS != "linux" {
		t.Fatalf("config %+v %v", cf, err)
	}
	layers, _ := got.Layers()
	if len(layers) != 1 {
		t.Fatalf("%d layers", len(layers))
	}
}
