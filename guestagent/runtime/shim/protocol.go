package shim

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Sentinel errors.
var (
	// ErrProtocol reports a malformed request, response or frame.
	ErrProtocol = errors.New("shim: protocol error")
	// ErrUnavailable reports a shim that cannot be reached (it has exited).
	ErrUnavailable = errors.New("shim: not reachable")
	// ErrNotRunning reports a request that needs a running container.
	ErrNotRunning = errors.New("shim: container is not running")
)

// File names inside the container directory.
const (
	ConfigFile = "shim.json" // Config, written by the agent
	SocketFile = "shim.sock" // the shim's socket
	ExitFile   = "exit.json" // Exit, written by the shim when init has exited
	LogFile    = "shim.log"  // the shim's own diagnostics (its stderr)
)

// Arg is the argv[1] with which the agent binary is re-executed as a shim;
// argv[2] is the container directory.
const Arg = "shim"

// Config is what the agent tells a shim, as shim.json in the container
// directory.
type Config struct {
	ID          string `json:"id"`          // container id (also the libct id)
	Bundle      string `json:"bundle"`      // OCI bundle directory (config.json)
	RuntimeRoot string `json:"runtimeRoot"` // libct state root
	Dir         string `json:"dir"`         // container directory: socket and exit.json
	LogPath     string `json:"logPath"`     // json-file log of the container's output
	CgroupsPath string `json:"cgroupsPath"` // the spec's cgroupsPath, for the OOM check
	Tty         bool   `json:"tty"`         // the process has a terminal
	OpenStdin   bool   `json:"openStdin"`   // keep a stdin for attach clients
	StdinOnce   bool   `json:"stdinOnce"`   // close stdin when the first stdin client leaves
	// StartTimeout bounds the wait for the start request after create
	// (0: one minute); the shim then deletes the container and exits.
	StartTimeout time.Duration `json:"startTimeout,omitempty"`
}

// Exit is how a container's init ended.
type Exit struct {
	ExitCode   int       `json:"exitCode"`         // the code, or 128+signal
	Signal     int       `json:"signal,omitempty"` // the signal that killed init, if any
	OOMKilled  bool      `json:"oomKilled,omitempty"`
	FinishedAt time.Time `json:"finishedAt"`
	Error      string    `json:"error,omitempty"` // the shim could not run or wait for the container
}

// ExitCode maps a wait status to Docker's exit code: the exit status, or
// 128+signal for a process killed by a signal.
func ExitCode(exited bool, status int, signaled bool, sig int) int {
	switch {
	case exited:
		return status
	case signaled:
		return 128 + sig
	}
	return 255
}

// Operations of a Request.
const (
	OpStart  = "start"
	OpState  = "state"
	OpKill   = "kill"
	OpResize = "resize"
	OpWait   = "wait"
	OpAttach = "attach"
	OpExec   = "exec"
)

// Request is the first line a client sends.
type Request struct {
	Op string `json:"op"`
	// Stdin, Stdout, Stderr select the streams of attach and exec.
	Stdin  bool `json:"stdin,omitempty"`
	Stdout bool `json:"stdout,omitempty"`
	Stderr bool `json:"stderr,omitempty"`
	// Process is the process of exec (its Terminal field selects a pty).
	Process *specs.Process `json:"process,omitempty"`
	// Signal and All are kill's arguments.
	Signal int  `json:"signal,omitempty"`
	All    bool `json:"all,omitempty"`
	// Height and Width are resize's arguments.
	Height uint16 `json:"height,omitempty"`
	Width  uint16 `json:"width,omitempty"`
}

// Response is the first line the shim sends.
type Response struct {
	Error  string `json:"error,omitempty"`
	Pid    int    `json:"pid,omitempty"`
	Status string `json:"status,omitempty"`
	Exit   *Exit  `json:"exit,omitempty"`
}

// Frame types.
const (
	FrameStdin  byte = 0
	FrameStdout byte = 1
	FrameStderr byte = 2
	FrameClose  byte = 3
	FrameResize byte = 4
	FrameExit   byte = 5
)

// MaxFrame is the largest frame payload.
const MaxFrame = 1 << 20

// WriteLine writes v as one JSON line.
func WriteLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %T: %w", v, err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// maxLine bounds a request or response line (an exec request carries a
// whole process).
const maxLine = 1 << 20

// ReadLine reads one JSON line into v.
func ReadLine(r *bufio.Reader, v any) error {
	var line []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) && len(line) > 0 {
				return fmt.Errorf("%w: truncated line", ErrProtocol)
			}
			return err
		}
		line = append(line, chunk...)
		if len(line) > maxLine {
			return fmt.Errorf("%w: line longer than %d bytes", ErrProtocol, maxLine)
		}
		if !isPrefix {
			break
		}
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	return nil
}

// WriteFrame writes one frame. Payloads longer than MaxFrame are split.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	for {
		n := min(len(payload), MaxFrame)
		buf := make([]byte, 5+n)
		buf[0] = typ
		binary.BigEndian.PutUint32(buf[1:5], uint32(n))
		copy(buf[5:], payload[:n])
		if _, err := w.Write(buf); err != nil {
			return err
		}
		payload = payload[n:]
		if len(payload) == 0 {
			return nil
		}
	}
}

// ReadFrame reads one frame. It returns io.EOF at a clean end between frames.
func ReadFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, fmt.Errorf("%w: truncated frame header", ErrProtocol)
		}
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:5])
	if n > MaxFrame {
		return 0, nil, fmt.Errorf("%w: frame of %d bytes", ErrProtocol, n)
	}
	if hdr[0] > FrameExit {
		return 0, nil, fmt.Errorf("%w: unknown frame type %d", ErrProtocol, hdr[0])
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, fmt.Errorf("%w: truncated frame", ErrProtocol)
	}
	return hdr[0], payload, nil
}

// ResizePayload encodes a resize frame's payload.
func ResizePayload(height, width uint16) []byte {
	var b [4]byte
	binary.BigEndian.PutUint16(b[0:2], height)
	binary.BigEndian.PutUint16(b[2:4], width)
	return b[:]
}

// ParseResize decodes a resize frame's payload.
func ParseResize(p []byte) (height, width uint16, err error) {
	if len(p) != 4 {
		return 0, 0, fmt.Errorf("%w: resize payload of %d bytes", ErrProtocol, len(p))
	}
	return binary.BigEndian.Uint16(p[0:2]), binary.BigEndian.Uint16(p[2:4]), nil
}

// WriteJSONAtomic writes v as JSON to path through a synced temporary file
// renamed into place.
func WriteJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// ReadExit reads exit.json from the container directory dir. It returns an
// error wrapping fs.ErrNotExist when the shim has not written it.
func ReadExit(dir string) (*Exit, error) {
	b, err := os.ReadFile(filepath.Join(dir, ExitFile))
	if err != nil {
		return nil, err
	}
	var e Exit
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("read %s: %w: %v", filepath.Join(dir, ExitFile), ErrProtocol, err)
	}
	return &e, nil
}

// ReadConfig reads shim.json from the container directory dir.
func ReadConfig(dir string) (*Config, error) {
	p := filepath.Join(dir, ConfigFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read shim config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("read %s: %w: %v", p, ErrProtocol, err)
	}
	return &c, nil
}
