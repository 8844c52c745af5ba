package zarr

import (
	"encoding/json"
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
	// Only an index that this package wrote marks a checkpoint: other
	// tools write files named index.json too.
	if b, err := os.ReadFile(filepath.Join(path, IndexFile)); err == nil {
		var idx struct {
			Format string `json:"format"`
		}
		if json.Unmarshal(b, &idx) == nil && idx.Format == indexFormat {
			return nil
		}
		return fmt.Errorf("%s has an %s that is not a zarr checkpoint's index (no \"format\": %q), and saving would delete the directory's contents; remove it or choose another path", path, IndexFile, indexFormat)
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
