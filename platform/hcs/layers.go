package hcs

import (
	"context"
	"io"
)

// ImportLayer writes an image layer (an uncompressed Windows layer tar: Files/, Hives/, UtilityVM/) into the
// layer folder dir with ociwclayer; parentDirs are the folders of the layers below it, topmost first. It
// returns the layer's size. On other systems it returns an error wrapping ErrNotSupported.
func ImportLayer(ctx context.Context, r io.Reader, dir string, parentDirs []string) (int64, error) {
	return importLayer(ctx, r, dir, parentDirs)
}
