package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/moby/moby/api/types/system"
)

func TestPing(t *testing.T) {
	srv := httptest.NewServer(New(Config{Version: "1.2.3"}))
	defer srv.Close()
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		for _, path := range []string{"/_ping", "/v1.43/_ping", "/v" + APIVersion + "/_ping"} {
			req, _ := http.NewRequest(method, srv.URL+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s %s: status %d", method, path, resp.StatusCode)
			}
			if got := resp.Header.Get("Api-Version"); got != APIVersion {
				t.Errorf("%s %s: Api-Version %q", method, path, got)
			}
			if got := resp.Header.Get("Ostype"); got != "linux" {
				t.Errorf("%s %s: Ostype %q", method, path, got)
			}
			want := "OK"
			if method == http.MethodHead {
				want = ""
			}
			if string(body) != want {
				t.Errorf("%s %s: body %q, want %q", method, path, body, want)
			}
		}
	}
}

func TestVersionRange(t *testing.T) {
	srv := httptest.NewServer(New(Config{}))
	defer srv.Close()
	cases := []struct {
		path   string
		status int
		msg    string
	}{
		{"/v1.99/version", 400, "client version 1.99 is too new. Maximum supported API version is " + APIVersion},
		{"/v1.12/version", 400, "client version 1.12 is too old. Minimum supported API version is " + MinAPIVersion + ", please upgrade your client to a newer version"},
		{"/v1.24/version", 200, ""},
		{"/version", 200, ""},
		{"/v1.43/nonexistent", 404, ""},
	}
	for _, c := range cases {
		resp, err := http.Get(srv.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d (%s)", c.path, resp.StatusCode, c.status, body)
			continue
		}
		if c.msg != "" {
			var e errorResponse
			if err := json.Unmarshal(body, &e); err != nil || e.Message != c.msg {
				t.Errorf("%s: body %s, want message %q", c.path, body, c.msg)
			}
		}
		if c.status == 200 {
			var v system.VersionResponse
			if err := json.Unmarshal(body, &v); err != nil {
				t.Fatalf("%s: %v", c.path, err)
			}
			if v.APIVersion != APIVersion || v.MinAPIVersion != MinAPIVersion || v.Os != "linux" {
				t.Errorf("%s: %+v", c.path, v)
			}
		}
	}
}

func TestSplitVersion(t *testing.T) {
	cases := []struct{ in, v, rest string }{
		{"/v1.43/containers/json", "1.43", "/containers/json"},
		{"/containers/json", "", "/containers/json"},
		{"/v1/x", "", "/v1/x"},
		{"/vx.y/x", "", "/vx.y/x"},
		{"/v1.43", "", "/v1.43"},
		{"/volumes/v1.2/x", "", "/volumes/v1.2/x"},
	}
	for _, c := range cases {
		v, rest := splitVersion(c.in)
		if v != c.v || rest != c.rest {
			t.Errorf("splitVersion(%q) = %q, %q; want %q, %q", c.in, v, rest, c.v, c.rest)
		}
	}
}

type notFoundErr struct{}

func (notFoundErr) Error() string { return "gone" }
func (notFoundErr) NotFound()     {}

func TestStatusOf(t *testing.T) {
	backendMissing := errors.New("backend: no such thing")
	c := &classes{notFound: []error{ErrNotFound, backendMissing}, conflict: []error{ErrConflict}, invalid: []error{ErrInvalid}}
	cases := []struct {
		err  error
		want int
	}{
		{fmt.Errorf("get x: %w", backendMissing), 404},
		{fmt.Errorf("wrapped: %w", notFoundErr{}), 404},
		{conflictf("name in use"), 409},
		{invalidf("bad"), 400},
		{errors.Join(errors.New("a"), ErrNotModified), 304},
		{errors.New("boom"), 500},
	}
	for _, tc := range cases {
		if got := c.statusOf(tc.err); got != tc.want {
			t.Errorf("statusOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestOSTypeIsConfigurable(t *testing.T) {
	srv := httptest.NewServer(New(Config{OSType: "windows", StorageDriver: "windowsfilter"}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/_ping")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Ostype"); got != "windows" {
		t.Fatalf("Ostype %q", got)
	}
}
