package t5x

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"ckptbench/formats/zarr"
	"ckptbench/tensor"
)

// IndexFile is the name of the msgpack index inside a checkpoint
// directory, as in T5X.
const IndexFile = "checkpoint"

// IndexVersion is the T5X checkpoint version the index records: 3, the
// version in which bfloat16 arrays are stored as TensorStore's bfloat16
// rather than as uint16.
const IndexVersion = 3

// checksumsKey is the top-level index key that contains every array's
// CRC32C list, by tensor name.
const checksumsKey = "chunk_crc32c"

// ErrIndex is wrapped by every error about an invalid index.
var ErrIndex = errors.New("invalid t5x index")

// maxIndexDepth bounds the nesting the index parser follows, so a hostile
// index cannot exhaust the stack. LLaMA names nest 6 deep.
const maxIndexDepth = 64

// Index is the content of a checkpoint's msgpack index: which zarr array
// holds each parameter.
//
// On disk it is a msgpack map shaped like T5X's:
//
//	{"version": 3,
//	 "optimizer": {"target": {"model": {"embed_tokens": {"weight": SPEC}, ...}}},
//	 "every_chunk_stored": true,
//	 "tensor_order": ["model.embed_tokens.weight", ...],
//	 "chunk_crc32c": {"model.embed_tokens.weight": [CRC, CRC, CRC, CRC], ...}}
//
// The parameter tree nests one map level per dot-separated part of a
// tensor name. Each leaf SPEC is the TensorStore spec T5X records:
//
//	{"driver": "zarr", "dtype": "float16",
//	 "kvstore": {"driver": "file", "path": "model/embed_tokens/weight"},
//	 "metadata": {"chunks": [8000, 3200], "compressor": {"id": "gzip"}, "shape": [32000, 3200]}}
//
// with the path relative to the checkpoint directory. "tensor_order" is
// this suite's addition: the tree groups names by prefix, so it cannot keep
// every save order by itself. Without it, tensors come in tree order.
// "chunk_crc32c", also this suite's, maps tensor names to Array.CRC32C.
// Both sit outside the parameter tree, so every spec stays one that
// TensorStore opens as it is.
type Index struct {
	Version int
	Arrays  []Array
	// EveryChunkStored, recorded as "every_chunk_stored", means that the
	// writer stored every chunk, so a missing chunk file means lost data
	// rather than a chunk of the fill value. Save sets it. TensorStore
	// omits chunks equal to the fill value, so foreign indexes lack it.
	EveryChunkStored bool
}

// Array is one parameter's entry in the index.
type Array struct {
	// Name is the tensor name, the tree path joined with dots.
	Name string
	// Path is the zarr array directory relative to the checkpoint
	// directory, with "/" separators.
	Path  string
	DType tensor.DType
	Shape []int64
	// Chunks and Compressor record how the array was written ("raw" for
	// none). Restore reads both from the array's .zarray instead, so
	// they are informational; Chunks may be nil in a foreign index.
	Chunks     []int64
	Compressor string
	// CRC32C lists the CRC-32C (Castagnoli) of each chunk, one per chunk
	// in linear (C-order) chunk number order of the grid that Chunks
	// gives. Each covers the chunk's elements that lie inside the array,
	// in C order within the chunk and in the stored dtype, so the padding
	// of an edge chunk is left out, and the value for a tensor stored as
	// one chunk is the CRC-32C of the tensor's bytes. Save records it;
	// nil means that the index records none (indexes written before
	// checksums were added, or by other writers).
	CRC32C []uint32
}

// checkName rejects tensor names that cannot become a path in the
// parameter tree.
func checkName(name string) error {
	if slices.Contains(strings.Split(name, "."), "") {
		return fmt.Errorf("tensor name %q has an empty part between dots; t5x nests the dot-separated parts of a name as the parameter tree, so rename the tensor", name)
	}
	return nil
}

// checkArrayPath rejects array paths that leave the checkpoint directory
// or collide with zarr's metadata files.
func checkArrayPath(p string) error {
	if p == "" || path.IsAbs(p) || path.Clean(p) != p || p == "." || strings.HasPrefix(p, "../") || p == ".." {
		return fmt.Errorf("array path %q is not a clean path inside the checkpoint directory", p)
	}
	for _, part := range strings.Split(p, "/") {
		if strings.HasPrefix(part, ".") || strings.ContainsRune(part, 0) {
			return fmt.Errorf("array path %q has a part that starts with '.' or contains NUL", p)
		}
	}
	if p == IndexFile {
		return fmt.Errorf("array path %q is the index file", p)
	}
	return nil
}

// Validate checks that the index can be restored and written again. Names
// must be unique and none may nest under another in the parameter tree.
// Paths must be unique, inside the checkpoint, and must not nest one array
// inside another, because a zarr v2 array has no children. Dtypes and
// shapes must be valid.
func (ix *Index) Validate() error {
	names := make(map[string]bool, len(ix.Arrays))
	byPath := make(map[string]string, len(ix.Arrays))
	for _, a := range ix.Arrays {
		if names[a.Name] {
			return fmt.Errorf("%w: tensor %q appears twice", ErrIndex, a.Name)
		}
		names[a.Name] = true
		if err := checkArrayPath(a.Path); err != nil {
			return fmt.Errorf("%w: tensor %q: %v", ErrIndex, a.Name, err)
		}
		if other, dup := byPath[a.Path]; dup {
			return fmt.Errorf("%w: tensors %q and %q share the array path %q", ErrIndex, other, a.Name, a.Path)
		}
		byPath[a.Path] = a.Name
		if _, err := zarr.DTypeString(a.DType); err != nil {
			return fmt.Errorf("%w: tensor %q: %v", ErrIndex, a.Name, err)
		}
		m := tensor.Meta{Name: a.Name, DType: a.DType, Shape: a.Shape}
		if m.NumBytes() < 0 {
			return fmt.Errorf("%w: tensor %q has an invalid shape %v", ErrIndex, a.Name, a.Shape)
		}
		if a.Chunks != nil && len(a.Chunks) != len(a.Shape) {
			return fmt.Errorf("%w: tensor %q has chunks %v for shape %v", ErrIndex, a.Name, a.Chunks, a.Shape)
		}
		if err := a.checkChecksumCount(); err != nil {
			return fmt.Errorf("%w: tensor %q: %v", ErrIndex, a.Name, err)
		}
	}
	for _, a := range ix.Arrays {
		for prefix := a.Name; ; {
			i := strings.LastIndexByte(prefix, '.')
			if i < 0 {
				break
			}
			prefix = prefix[:i]
			if names[prefix] {
				return fmt.Errorf("%w: tensor %q is nested under tensor %q in the parameter tree; rename one of them", ErrIndex, a.Name, prefix)
			}
		}
	}
	for p, name := range byPath {
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if other, ok := byPath[dir]; ok {
				return fmt.Errorf("%w: array %q of tensor %q lies inside array %q of tensor %q; a zarr v2 array cannot contain other arrays, so rename one of the tensors", ErrIndex, p, name, dir, other)
			}
		}
	}
	return nil
}

// checkChecksumCount checks that a has one checksum per chunk of its
// chunk grid, if it has checksums at all.
func (a *Array) checkChecksumCount() error {
	if a.CRC32C == nil {
		return nil
	}
	if a.Chunks == nil {
		return fmt.Errorf("the index records chunk checksums but no chunk shape")
	}
	for _, c := range a.Chunks {
		if c <= 0 {
			return fmt.Errorf("chunks %v has a dimension below 1", a.Chunks)
		}
	}
	if n := newGrid(a.Shape, a.Chunks).numChunks(); int64(len(a.CRC32C)) != n {
		return fmt.Errorf("the index records %d chunk checksums, but shape %v in chunks %v has %d chunks", len(a.CRC32C), a.Shape, a.Chunks, n)
	}
	return nil
}

// MarshalBinary encodes the index as msgpack, the parameter tree in the
// order of ix.Arrays.
func (ix *Index) MarshalBinary() ([]byte, error) {
	if err := ix.Validate(); err != nil {
		return nil, err
	}
	root := &tree{}
	for i := range ix.Arrays {
		a := &ix.Arrays[i]
		if err := checkName(a.Name); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrIndex, err)
		}
		if err := root.insert(splitName(a.Name), a); err != nil {
			return nil, err
		}
	}

	var buf bytes.Buffer
	e := &encoder{enc: msgpack.NewEncoder(&buf)}
	e.enc.UseCompactInts(true)
	var summed []*Array
	for i := range ix.Arrays {
		if ix.Arrays[i].CRC32C != nil {
			summed = append(summed, &ix.Arrays[i])
		}
	}
	keys := 4
	if len(summed) > 0 {
		keys++
	}
	e.mapLen(keys)
	e.str("version")
	e.int(int64(ix.Version))
	e.str("optimizer")
	e.mapLen(1)
	e.str("target")
	root.encode(e)
	e.str("every_chunk_stored")
	e.do(func() error { return e.enc.EncodeBool(ix.EveryChunkStored) })
	e.str("tensor_order")
	e.arrayLen(len(ix.Arrays))
	for _, a := range ix.Arrays {
		e.str(a.Name)
	}
	if len(summed) > 0 {
		e.str(checksumsKey)
		e.mapLen(len(summed))
		for _, a := range summed {
			e.str(a.Name)
			e.arrayLen(len(a.CRC32C))
			for _, sum := range a.CRC32C {
				e.do(func() error { return e.enc.EncodeUint(uint64(sum)) })
			}
		}
	}
	if e.err != nil {
		return nil, fmt.Errorf("t5x: encode index: %w", e.err)
	}
	return buf.Bytes(), nil
}

// splitName returns the parts of a tensor name, its path in the
// parameter tree.
func splitName(name string) []string { return strings.Split(name, ".") }

// tree is the nested parameter tree, children in insertion order.
type tree struct {
	keys     []string
	children []*tree
	leaf     *Array
}

func (t *tree) insert(parts []string, a *Array) error {
	node := t
	for depth, part := range parts {
		if node.leaf != nil {
			return fmt.Errorf("%w: tensor %q is nested under tensor %q; rename one of them", ErrIndex, a.Name, node.leaf.Name)
		}
		i := slices.Index(node.keys, part)
		if i < 0 {
			node.keys = append(node.keys, part)
			node.children = append(node.children, &tree{})
			i = len(node.keys) - 1
		}
		node = node.children[i]
		if depth == len(parts)-1 {
			if node.leaf != nil || len(node.keys) > 0 {
				return fmt.Errorf("%w: tensor %q is a prefix of another tensor's name; rename one of them", ErrIndex, a.Name)
			}
			node.leaf = a
		}
	}
	return nil
}

func (t *tree) encode(e *encoder) {
	if t.leaf != nil {
		e.spec(t.leaf)
		return
	}
	e.mapLen(len(t.keys))
	for i, k := range t.keys {
		e.str(k)
		t.children[i].encode(e)
	}
}

// encoder wraps a msgpack encoder and keeps its first error, so a
// sequence of writes needs one check at the end.
type encoder struct {
	enc *msgpack.Encoder
	err error
}

func (e *encoder) do(f func() error) {
	if e.err == nil {
		e.err = f()
	}
}

func (e *encoder) mapLen(n int)   { e.do(func() error { return e.enc.EncodeMapLen(n) }) }
func (e *encoder) arrayLen(n int) { e.do(func() error { return e.enc.EncodeArrayLen(n) }) }
func (e *encoder) str(s string)   { e.do(func() error { return e.enc.EncodeString(s) }) }
func (e *encoder) int(v int64)    { e.do(func() error { return e.enc.EncodeInt(v) }) }
func (e *encoder) nil()           { e.do(e.enc.EncodeNil) }

func (e *encoder) ints(v []int64) {
	e.arrayLen(len(v))
	for _, x := range v {
		e.int(x)
	}
}

// spec writes the TensorStore spec of one array, with the keys T5X
// writes.
func (e *encoder) spec(a *Array) {
	e.mapLen(4)
	e.str("driver")
	e.str("zarr")
	e.str("dtype")
	e.str(a.DType.String())
	e.str("kvstore")
	e.mapLen(2)
	e.str("driver")
	e.str("file")
	e.str("path")
	e.str(a.Path)
	e.str("metadata")
	if a.Chunks == nil {
		e.mapLen(2)
	} else {
		e.mapLen(3)
		e.str("chunks")
		e.ints(a.Chunks)
	}
	e.str("compressor")
	if a.Compressor == "" || a.Compressor == "raw" {
		e.nil()
	} else {
		e.mapLen(1)
		e.str("id")
		e.str(a.Compressor)
	}
	e.str("shape")
	e.ints(a.Shape)
}
