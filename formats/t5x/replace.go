package t5x

import (
	"bufio"
	"fmt"
	"os"

	"github.com/vmihailenco/msgpack/v5"

	"ckptbench/iox"
)

// checkReplaceable returns an error unless Save may replace what is at
// path: nothing, an empty directory or a T5X checkpoint. iox.Commit swaps
// the new checkpoint with whatever is at path and then deletes it, so
// anything else, such as a directory of other files, would be lost.
//
// A T5X checkpoint is a directory whose IndexFile starts with a msgpack
// map that has the keys "version" and "optimizer", as Save and T5X write
// it. The rest of the index is not checked, so a checkpoint with a
// damaged parameter tree, or of a version Load rejects, can still be
// replaced. The name alone would not do: TensorFlow keeps a text file
// named "checkpoint" in its model directories.
func checkReplaceable(path string) error {
	return iox.CheckReplaceable(path, "t5x", IndexFile, func(index string) error {
		f, err := os.Open(index)
		if err != nil {
			return err
		}
		defer f.Close()
		if !isIndex(bufio.NewReader(f)) {
			return fmt.Errorf("%s is not a t5x msgpack index", index)
		}
		return nil
	})
}

// isIndex reports whether r starts with a msgpack map that has the keys
// "version" and "optimizer", skipping the values.
func isIndex(r *bufio.Reader) bool {
	dec := msgpack.NewDecoder(r)
	n, err := dec.DecodeMapLen()
	if err != nil {
		return false
	}
	var version, optimizer bool
	for range n {
		key, err := dec.DecodeString()
		if err != nil {
			return false
		}
		switch key {
		case "version":
			version = true
		case "optimizer":
			optimizer = true
		}
		if version && optimizer {
			return true
		}
		if err := dec.Skip(); err != nil {
			return false
		}
	}
	return false
}
