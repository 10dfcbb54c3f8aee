package apisocket

import "net"

// listenUnix: Windows has AF_UNIX without a umask; the socket inherits the 0700-equivalent ACL of the
// instance directory.
func listenUnix(path string) (net.Listener, error) { return net.Listen("unix", path) }
