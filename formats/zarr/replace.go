package zarr

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// checkReplaceable returns an error unless Save may replace what is at
// path: nothing, an empty directory or a zarr checkpoint (a directory
// with IndexFile). iox.Commit swaps the new checkpoint with whatever is at
// path and then deletes it, so anything else, such as a directory of
// other files, would be lost.
func checkReplaceable(path string) error {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%s exists and is not a directory; a zarr checkpoint is a directory, so remove it or choose another path", path)
	}
	if _, err := os.Stat(filepath.Join(path, IndexFile)); err == nil {
		return nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is a directory but not a zarr checkpoint (it has no %s), and saving would delete its contents; remove it or choose another path", path, IndexFile)
	}
	return nil
}
