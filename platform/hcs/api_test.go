package hcs

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/guestagent/engine"
	"github.com/berth-dev/berth/guestagent/runtime/container"
)

// The Service behind the engine's HTTP API, driven by the Docker client as the docker CLI drives it:
// attach-then-start with stdin, exec with its exit code, resize, and exec in a stopped container.
func TestAPIAttachExec(t *testing.T) {
	s, rt := newTestService(t)
	ctx := testCtx(t)
	eng := engine.New(engine.Config{Version: "test", Containers: s, OSType: "windows"})
	srv := httptest.NewServer(eng)
	t.Cleanup(func() {
		srv.Close()
		eng.Close()
	})
	cl, err := client.New(client.WithHost("tcp://"+srv.Listener.Addr().String()), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	// docker run -i nanoserver cat
	c, err := s.Create(ctx, container.CreateOptions{Config: container.Config{Image: "nanoserver", Cmd: []string{"cat"}, OpenStdin: true, StdinOnce: true}})
	if err != nil {
		t.Fatal(err)
	}
	att, err := cl.ContainerAttach(ctx, c.ID, client.ContainerAttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer att.Close()
	if _, err := cl.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := att.Conn.Write([]byte("over the wire\n")); err != nil {
		t.Fatal(err)
	}
	if err := att.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errOut, att.Reader); err != nil {
		t.Fatal(err)
	}
	if out.String() != "over the wire\n" || errOut.Len() != 0 {
		t.Fatalf("attach: stdout %q stderr %q", out.String(), errOut.String())
	}
	if r := waitExit(t, s, c.ID, container.WaitNotRunning); r.ExitCode != 0 {
		t.Fatalf("exit %+v", r)
	}

	// docker exec in a running container.
	srvC := createStarted(t, s, container.Config{Image: "nanoserver", Cmd: []string{"server.exe"}})
	ex, err := cl.ExecCreate(ctx, srvC.ID, client.ExecCreateOptions{Cmd: []string{"fail", "5"}, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	ea, err := cl.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	_, err = stdcopy.StdCopy(&out, &errOut, ea.Reader)
	ea.Close()
	if err != nil || out.Len() != 0 || errOut.String() != "failing\n" {
		t.Fatalf("exec: %v, stdout %q stderr %q", err, out.String(), errOut.String())
	}
	ins, err := cl.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
	if err != nil || ins.Running || ins.ExitCode != 5 || ins.PID != 2000 {
		t.Fatalf("exec inspect %+v %v", ins, err)
	}

	// docker exec -t: the console size reaches the process.
	ex, err = cl.ExecCreate(ctx, srvC.ID, client.ExecCreateOptions{Cmd: []string{"echo", "tty"}, TTY: true, AttachStdout: true, ConsoleSize: client.ConsoleSize{Height: 33, Width: 99}})
	if err != nil {
		t.Fatal(err)
	}
	ea, err = cl.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{TTY: true, ConsoleSize: client.ConsoleSize{Height: 33, Width: 99}})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(ea.Reader)
	ea.Close()
	if err != nil || string(raw) != "tty\n" {
		t.Fatalf("tty exec: %q %v", raw, err)
	}
	if got := rt.lastTask().lastExec().resized(); len(got) != 1 || got[0] != [2]uint16{33, 99} {
		t.Errorf("tty exec console sizes %v", got)
	}

	// Exec in a stopped container answers 409.
	resp, err := http.Post(srv.URL+"/containers/"+c.ID+"/exec", "application/json", strings.NewReader(`{"Cmd":["echo","x"]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "is not running") {
		t.Errorf("exec in a stopped container: %d %s", resp.StatusCode, body)
	}
}
