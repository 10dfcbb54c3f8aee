// Package hostshim holds the host half of berth: the instance store, the hostagent supervisor, the SSH
// transport to the guest agent (package transport), port forwarding, the host API socket and file sharing.
package hostshim
