package hcs

import (
	"fmt"
	"net"
	"regexp"
)

// PipeName is the named pipe the engine API is served on (the docker CLI's npipe:////./pipe/berth_engine).
const PipeName = `\\.\pipe\berth_engine`

// sidPattern matches a textual SID ("S-1-5-21-…").
var sidPattern = regexp.MustCompile(`^S-1-[0-9]+(-[0-9]+)+$`)

// PipeSDDL is the pipe's security descriptor: a protected DACL granting full access to the built-in
// Administrators group and to the user with userSID, and to no one else.
func PipeSDDL(userSID string) (string, error) {
	if !sidPattern.MatchString(userSID) {
		return "", fmt.Errorf("%w: %q is not a SID", ErrInvalidConfig, userSID)
	}
	return "D:P(A;;GA;;;BA)(A;;GA;;;" + userSID + ")", nil
}

// ListenPipe listens on PipeName with PipeSDDL for the current user: only that user and Administrators
// may connect. On other systems it returns an error wrapping ErrNotSupported.
func ListenPipe() (net.Listener, error) { return listenPipe(PipeName) }
