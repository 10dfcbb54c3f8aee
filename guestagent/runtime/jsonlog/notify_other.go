//go:build !linux

package jsonlog

import "errors"

// newNotifier has no change notifications here: followers poll every
// pollInterval.
func newNotifier(string) (*notifier, error) {
	return nil, errors.New("no file change notifications on this OS")
}
