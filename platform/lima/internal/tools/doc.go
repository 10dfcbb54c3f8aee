// Package tools pins the Lima commands the opt-in Lima test builds (go build from this module):
// github.com/lima-vm/lima/v2/cmd/limactl and cmd/lima-guestagent.
package tools
