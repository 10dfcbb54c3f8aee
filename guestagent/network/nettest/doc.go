// Package nettest runs root tests that create bridges, veths and nftables
// rules inside a throwaway network (and mount) namespace, so that they can
// never touch the host's own network.
package nettest
