package zarr

import (
	"encoding/json"
	"fmt"
	"os"

	"ckptbench/iox"
)

// checkReplaceable returns an error unless Save may replace what is at
// path: nothing, an empty directory or a zarr checkpoint (a directory
// with IndexFile). iox.Commit swaps the new checkpoint with whatever is at
// path and then deletes it, so anything else, such as a directory of
// other files, would be lost.
func checkReplaceable(path string) error {
	// Only an index that this package wrote marks a checkpoint: other
	// tools write files named index.json too.
	return iox.CheckReplaceable(path, "zarr", IndexFile, func(index string) error {
		b, err := os.ReadFile(index)
		if err != nil {
			return err
		}
		var idx struct {
			Format string `json:"format"`
		}
		if json.Unmarshal(b, &idx) != nil || idx.Format != indexFormat {
			return fmt.Errorf("%s is not a zarr checkpoint's index (no \"format\": %q)", index, indexFormat)
		}
		return nil
	})
}
