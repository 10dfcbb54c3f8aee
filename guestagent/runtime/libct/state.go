package libct

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// File names inside Root/<id>.
const (
	stateFileName = "state.json"
	execFifoName  = "exec.fifo"
)

// containerState is what Root/<id>/state.json holds.
type containerState struct {
	// ID is the container id.
	ID string `json:"id"`
	// Bundle is the absolute bundle directory.
	Bundle string `json:"bundle"`
	// Rootfs is the absolute root filesystem path.
	Rootfs string `json:"rootfs"`
	// InitPid is init's pid in the runtime's pid namespace; 0 while creating.
	InitPid int `json:"initPid,omitempty"`
	// InitStart is init's start time (field 22 of /proc/<pid>/stat), to
	// recognise a reused pid.
	InitStart uint64 `json:"initStart,omitempty"`
	// Created is when Create finished.
	Created time.Time `json:"created"`
	// Annotations are the spec's annotations.
	Annotations map[string]string `json:"annotations,omitempty"`
	// CgroupPath is the cgroups path given to cgroups.New.
	CgroupPath string `json:"cgroupPath"`
	// Config is the spec the container was created from.
	Config *specs.Spec `json:"config"`
}

// procInfo is what the status logic needs to know about a pid.
type procInfo struct {
	Exists bool   // /proc/<pid>/stat could be read
	Zombie bool   // state Z or X
	Start  uint64 // field 22
}

// computeStatus derives the OCI status from the saved state, what /proc says
// about the init pid, and whether the exec fifo still exists.
func computeStatus(st *containerState, p procInfo, fifoExists bool) specs.ContainerState {
	if st.InitPid == 0 {
		return specs.StateCreating
	}
	if !p.Exists || p.Zombie || p.Start != st.InitStart {
		return specs.StateStopped
	}
	if fifoExists {
		return specs.StateCreated
	}
	return specs.StateRunning
}

// parseStat extracts the state letter and start time from the content of
// /proc/<pid>/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseStat(b []byte) (state byte, start uint64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, 0, fmt.Errorf("malformed stat %q", b)
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, 0, fmt.Errorf("malformed stat %q", b)
	}
	start, err = strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed stat start time: %w", err)
	}
	return fields[0][0], start, nil
}

// readProcInfo reads /proc/<pid>/stat.
func readProcInfo(pid int) procInfo {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procInfo{}
	}
	state, start, err := parseStat(b)
	if err != nil {
		return procInfo{}
	}
	return procInfo{Exists: true, Zombie: state == 'Z' || state == 'X', Start: start}
}

// ociState is the runtime-spec view of a container.
func (st *containerState) ociState(status specs.ContainerState) *specs.State {
	s := &specs.State{
		Version:     specs.Version,
		ID:          st.ID,
		Status:      status,
		Bundle:      st.Bundle,
		Annotations: st.Annotations,
	}
	if status == specs.StateCreated || status == specs.StateRunning || status == specs.StateCreating {
		s.Pid = st.InitPid
	}
	return s
}

// writeFileAtomic writes data to path via a temporary file and a rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// saveState writes st to dir/state.json.
func saveState(dir string, st *containerState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode state of %s: %w", st.ID, err)
	}
	return writeFileAtomic(filepath.Join(dir, stateFileName), b, 0o600)
}

// loadState reads dir/state.json.
func loadState(dir, id string) (*containerState, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFileName))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("container %s: %w", id, ErrNotExist)
		}
		return nil, fmt.Errorf("read state of %s: %w", id, err)
	}
	var st containerState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decode state of %s: %w", id, err)
	}
	return &st, nil
}
