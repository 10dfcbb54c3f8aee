// Package hostshim holds the host half of berth: the instance store (instance), the hostagent process
// (hostagent), the SSH transport to the guest agent (transport), port forwarding (portfwd), the host API
// socket (apisocket) and process bookkeeping (daemon). See README.md.
package hostshim
