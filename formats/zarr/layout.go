package zarr

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"ckptbench/tensor"
)

// IndexFile is the name of the file that lists a checkpoint's tensors. It
// is written last, so a directory without it is not a complete checkpoint.
const IndexFile = "index.json"

// indexFormat identifies IndexFile's schema; the version changes when the
// schema does.
const (
	indexFormat  = "ckptbench-zarr"
	indexVersion = 1
)

// Index is the content of IndexFile: the tensors in saved order, each with
// the array directory that stores it, relative to the checkpoint.
type Index struct {
	Format  string       `json:"format"`
	Version int          `json:"version"`
	Tensors []IndexEntry `json:"tensors"`
}

// IndexEntry is one tensor in an Index.
type IndexEntry struct {
	Name  string       `json:"name"`
	Path  string       `json:"path"` // slash-separated, relative to the checkpoint
	DType tensor.DType `json:"dtype"`
	Shape []int64      `json:"shape"`
	// CRC32C is the CRC-32C of the tensor's bytes in C order, which Verify
	// and Load with VerifyOnLoad check. Indexes written before checksums
	// were added have none.
	CRC32C *uint32 `json:"crc32c,omitempty"`
}

// ArrayPath returns the slash-separated directory, relative to the
// checkpoint, of the array that stores the tensor name: the name's
// dot-separated parts become nested directories, as in T5X's parameter
// paths, so model.layers.0.mlp.up_proj.weight is stored in
// model/layers/0/mlp/up_proj/weight. Bytes other than ASCII letters,
// digits, '_' and '-' are escaped as %XX, so the path stays one directory
// per part and can be inverted. A name with an empty part ("a..b", ".a")
// has no path and is rejected.
func ArrayPath(name string) (string, error) {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		if p == "" {
			return "", fmt.Errorf("zarr: tensor %q has an empty dot-separated part, which cannot be a directory; rename the tensor", name)
		}
		parts[i] = escapePart(p)
	}
	return strings.Join(parts, "/"), nil
}

func escapePart(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// buildIndex returns the index of sd and rejects tensors whose array
// directories would overlap: an array directory cannot also hold another
// tensor's array, because its chunk files and the other array's
// directories would share names.
func buildIndex(sd *tensor.StateDict) (Index, error) {
	idx := Index{Format: indexFormat, Version: indexVersion}
	owner := map[string]string{} // array path -> tensor name
	for _, t := range sd.Tensors {
		p, err := ArrayPath(t.Name)
		if err != nil {
			return Index{}, err
		}
		owner[p] = t.Name
		idx.Tensors = append(idx.Tensors, IndexEntry{Name: t.Name, Path: p, DType: t.DType, Shape: t.Shape})
	}
	for _, e := range idx.Tensors {
		for dir := e.Path; ; {
			i := strings.LastIndexByte(dir, '/')
			if i < 0 {
				break
			}
			dir = dir[:i]
			if other, ok := owner[dir]; ok {
				return Index{}, fmt.Errorf("zarr: tensor %q would be stored inside the array of tensor %q (%s); zarr arrays cannot nest, so rename one of them", e.Name, other, dir)
			}
		}
	}
	return idx, nil
}

// readIndex reads and checks the index of the checkpoint at root.
func readIndex(root string) (Index, error) {
	path := filepath.Join(root, IndexFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Index{}, fmt.Errorf("zarr: %s is missing; %s is not a complete zarr checkpoint (was its save interrupted?)", path, root)
	}
	if err != nil {
		return Index{}, fmt.Errorf("zarr: read index: %w", err)
	}
	var idx Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return Index{}, fmt.Errorf("zarr: %s: invalid index: %w", path, err)
	}
	if idx.Format != indexFormat || idx.Version != indexVersion {
		return Index{}, fmt.Errorf("zarr: %s: format %q version %d, want %q version %d", path, idx.Format, idx.Version, indexFormat, indexVersion)
	}
	seen := map[string]bool{}
	for i, e := range idx.Tensors {
		switch {
		case e.Name == "":
			return Index{}, fmt.Errorf("zarr: %s: tensor #%d has an empty name", path, i)
		case seen[e.Name]:
			return Index{}, fmt.Errorf("zarr: %s: tensor %q is listed twice", path, e.Name)
		case e.Path == "" || !filepath.IsLocal(filepath.FromSlash(e.Path)):
			return Index{}, fmt.Errorf("zarr: %s: tensor %q has path %q, which is not inside the checkpoint", path, e.Name, e.Path)
		case e.DType.Size() == 0:
			return Index{}, fmt.Errorf("zarr: %s: tensor %q has no dtype", path, e.Name)
		case (tensor.Meta{DType: e.DType, Shape: e.Shape}).NumBytes() < 0:
			return Index{}, fmt.Errorf("zarr: %s: tensor %q has invalid shape %v", path, e.Name, e.Shape)
		}
		seen[e.Name] = true
	}
	return idx, nil
}
