//go:build !linux

package container

import "fmt"

type noMounter struct{}

func newOverlayMounter() rootfsMounter { return noMounter{} }

func (noMounter) Mount(layers []string, upper, work, target string) error {
	return fmt.Errorf("mount %s: %w", target, ErrNotSupported)
}
func (noMounter) Unmount(target string) error         { return nil }
func (noMounter) Mounted(target string) (bool, error) { return false, nil }
