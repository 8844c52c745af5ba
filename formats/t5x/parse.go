package t5x

import (
	"bytes"
	"fmt"
	"math"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"

	"ckptbench/tensor"
)

// ParseIndex decodes and validates a msgpack index written by Save or by
// a T5X-style writer. Errors wrap ErrIndex and name the offending entry.
//
// It reads the parameter tree under "optimizer"/"target". A map with the
// keys "driver", "kvstore" and "metadata" is an array spec (T5X's own
// test), and any other map is a subtree. The array path comes from
// spec.kvstore.path, or spec.path as TensorStore before 0.1.14 wrote it.
// Other top-level keys (T5X's optimizer "state", "step") are ignored.
// Parameters stored inline in the index, which T5X does for unpartitioned
// arrays, are rejected: this suite writes every parameter as a zarr array.
func ParseIndex(b []byte) (*Index, error) {
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	v, err := decodeOrdered(dec, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIndex, err)
	}
	root, ok := v.(*orderedMap)
	if !ok {
		return nil, fmt.Errorf("%w: top level is %s, want a map; the file is not a t5x msgpack index", ErrIndex, kindOf(v))
	}
	if _, err := dec.PeekCode(); err == nil {
		return nil, fmt.Errorf("%w: data after the msgpack map", ErrIndex)
	}

	ix := &Index{}
	version, ok := toInt(root.get("version"))
	if !ok {
		return nil, fmt.Errorf("%w: \"version\" is %s, want an integer", ErrIndex, kindOf(root.get("version")))
	}
	if version != IndexVersion {
		return nil, fmt.Errorf("%w: version %d is not supported; only version %d (bfloat16 stored as bfloat16) is", ErrIndex, version, IndexVersion)
	}
	ix.Version = int(version)

	optimizer, ok := root.get("optimizer").(*orderedMap)
	if !ok {
		return nil, fmt.Errorf("%w: \"optimizer\" is %s, want a map holding the parameter tree under \"target\"", ErrIndex, kindOf(root.get("optimizer")))
	}
	target, ok := optimizer.get("target").(*orderedMap)
	if !ok {
		return nil, fmt.Errorf("%w: \"optimizer\".\"target\" is %s, want the parameter tree", ErrIndex, kindOf(optimizer.get("target")))
	}
	if err := ix.collect(target, nil); err != nil {
		return nil, err
	}

	switch v := root.get("every_chunk_stored").(type) {
	case nil:
	case bool:
		ix.EveryChunkStored = v
	default:
		return nil, fmt.Errorf("%w: \"every_chunk_stored\" is %s, want a boolean", ErrIndex, kindOf(v))
	}
	if order := root.get("tensor_order"); order != nil {
		if err := ix.reorder(order); err != nil {
			return nil, err
		}
	}
	if sums := root.get(checksumsKey); sums != nil {
		if err := ix.setChecksums(sums); err != nil {
			return nil, err
		}
	}
	if err := ix.Validate(); err != nil {
		return nil, err
	}
	return ix, nil
}

// collect appends the arrays of the subtree m, whose tree path is prefix.
func (ix *Index) collect(m *orderedMap, prefix []string) error {
	for i, key := range m.keys {
		parts := append(prefix[:len(prefix):len(prefix)], key)
		name := strings.Join(parts, ".")
		if err := checkName(name); err != nil {
			return fmt.Errorf("%w: %v", ErrIndex, err)
		}
		sub, ok := m.vals[i].(*orderedMap)
		if !ok {
			return fmt.Errorf("%w: parameter %q is %s, not a TensorStore spec; parameters stored inline in the index are not supported", ErrIndex, name, kindOf(m.vals[i]))
		}
		if !isSpec(sub) {
			if err := ix.collect(sub, parts); err != nil {
				return err
			}
			continue
		}
		a, err := parseSpec(name, sub)
		if err != nil {
			return fmt.Errorf("%w: parameter %q: %v", ErrIndex, name, err)
		}
		ix.Arrays = append(ix.Arrays, a)
	}
	return nil
}

func isSpec(m *orderedMap) bool {
	return m.has("driver") && m.has("metadata") && (m.has("kvstore") || m.has("path"))
}

func parseSpec(name string, spec *orderedMap) (Array, error) {
	a := Array{Name: name}
	if d, _ := spec.get("driver").(string); d != "zarr" {
		return a, fmt.Errorf("driver is %s, want \"zarr\"", describe(spec.get("driver")))
	}
	dtype, ok := spec.get("dtype").(string)
	if !ok {
		return a, fmt.Errorf("dtype is %s, want a string such as \"float16\"", kindOf(spec.get("dtype")))
	}
	var err error
	if a.DType, err = tensor.ParseDType(dtype); err != nil {
		return a, err
	}

	pathValue := spec.get("path")
	if kv := spec.get("kvstore"); kv != nil {
		kvstore, ok := kv.(*orderedMap)
		if !ok {
			return a, fmt.Errorf("kvstore is %s, want a map", kindOf(kv))
		}
		if d, _ := kvstore.get("driver").(string); d != "file" && d != "gfile" {
			return a, fmt.Errorf("kvstore driver is %s; only local files (\"file\") can be restored", describe(kvstore.get("driver")))
		}
		pathValue = kvstore.get("path")
	}
	if a.Path, ok = pathValue.(string); !ok {
		return a, fmt.Errorf("array path is %s, want a string", kindOf(pathValue))
	}

	md, ok := spec.get("metadata").(*orderedMap)
	if !ok {
		return a, fmt.Errorf("metadata is %s, want a map", kindOf(spec.get("metadata")))
	}
	if a.Shape, ok = toInts(md.get("shape")); !ok {
		return a, fmt.Errorf("metadata shape is %s, want a list of integers", describe(md.get("shape")))
	}
	if c := md.get("chunks"); c != nil {
		if a.Chunks, ok = toInts(c); !ok {
			return a, fmt.Errorf("metadata chunks is %s, want a list of integers", describe(c))
		}
	}
	switch c := md.get("compressor").(type) {
	case nil:
		a.Compressor = "raw"
	case *orderedMap:
		id, ok := c.get("id").(string)
		if !ok || id == "" {
			return a, fmt.Errorf("metadata compressor id is %s, want a codec name such as \"zstd\"", describe(c.get("id")))
		}
		a.Compressor = id
	default:
		return a, fmt.Errorf("metadata compressor is %s, want null or a map with an \"id\"", kindOf(c))
	}
	return a, nil
}

// reorder puts ix.Arrays in the order the "tensor_order" list gives,
// which must name every array exactly once.
func (ix *Index) reorder(v any) error {
	list, ok := v.([]any)
	if !ok || len(list) != len(ix.Arrays) {
		return fmt.Errorf("%w: \"tensor_order\" is %s, want a list of the index's %d tensor names", ErrIndex, describe(v), len(ix.Arrays))
	}
	at := make(map[string]int, len(ix.Arrays))
	for i, a := range ix.Arrays {
		at[a.Name] = i
	}
	ordered := make([]Array, 0, len(list))
	for _, item := range list {
		name, ok := item.(string)
		if !ok {
			return fmt.Errorf("%w: \"tensor_order\" contains %s, want tensor names", ErrIndex, describe(item))
		}
		i, ok := at[name]
		if !ok {
			return fmt.Errorf("%w: \"tensor_order\" names %q, which is not in the parameter tree or appears twice", ErrIndex, name)
		}
		delete(at, name)
		ordered = append(ordered, ix.Arrays[i])
	}
	ix.Arrays = ordered
	return nil
}

// setChecksums fills in Array.CRC32C from the value of checksumsKey: a
// map from tensor names to lists of unsigned 32-bit integers. Validate
// then checks each list's length against the array's chunk grid.
func (ix *Index) setChecksums(v any) error {
	m, ok := v.(*orderedMap)
	if !ok {
		return fmt.Errorf("%w: %q is %s, want a map from tensor names to lists of CRC-32C values", ErrIndex, checksumsKey, kindOf(v))
	}
	at := make(map[string]int, len(ix.Arrays))
	for i, a := range ix.Arrays {
		at[a.Name] = i
	}
	for i, name := range m.keys {
		j, ok := at[name]
		if !ok {
			return fmt.Errorf("%w: %q names tensor %q, which is not in the parameter tree", ErrIndex, checksumsKey, name)
		}
		list, ok := m.vals[i].([]any)
		if !ok {
			return fmt.Errorf("%w: %q: tensor %q has %s, want a list of CRC-32C values", ErrIndex, checksumsKey, name, kindOf(m.vals[i]))
		}
		sums := make([]uint32, len(list))
		for k, item := range list {
			sum, ok := toInt(item)
			if !ok || sum < 0 || sum > math.MaxUint32 {
				return fmt.Errorf("%w: %q: tensor %q: checksum %d is %s, want an integer from 0 to 2^32-1", ErrIndex, checksumsKey, name, k, describe(item))
			}
			sums[k] = uint32(sum)
		}
		ix.Arrays[j].CRC32C = sums
	}
	return nil
}

// orderedMap is a decoded msgpack map that keeps its keys in stored
// order, which is the tensor order of an index without "tensor_order".
type orderedMap struct {
	keys []string
	vals []any
}

func (m *orderedMap) get(key string) any {
	for i, k := range m.keys {
		if k == key {
			return m.vals[i]
		}
	}
	return nil
}

func (m *orderedMap) has(key string) bool {
	for _, k := range m.keys {
		if k == key {
			return true
		}
	}
	return false
}

// extValue stands for a msgpack extension value, such as an array that
// flax stored inline; its contents are skipped.
type extValue struct{}

// decodeOrdered decodes one msgpack value: maps become *orderedMap with
// string keys (duplicates rejected), arrays []any, extension values
// extValue and scalars what msgpack's DecodeInterface returns.
func decodeOrdered(d *msgpack.Decoder, depth int) (any, error) {
	if depth > maxIndexDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxIndexDepth)
	}
	c, err := d.PeekCode()
	if err != nil {
		return nil, err
	}
	switch {
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		n, err := d.DecodeMapLen()
		if err != nil {
			return nil, err
		}
		m := &orderedMap{}
		for range n {
			kc, err := d.PeekCode()
			if err != nil {
				return nil, err
			}
			if !msgpcode.IsString(kc) && !msgpcode.IsBin(kc) {
				return nil, fmt.Errorf("map key of msgpack type 0x%02x; keys must be strings", kc)
			}
			key, err := d.DecodeString()
			if err != nil {
				return nil, err
			}
			if m.has(key) {
				return nil, fmt.Errorf("map key %q appears twice", key)
			}
			v, err := decodeOrdered(d, depth+1)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			m.keys = append(m.keys, key)
			m.vals = append(m.vals, v)
		}
		return m, nil
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		n, err := d.DecodeArrayLen()
		if err != nil {
			return nil, err
		}
		list := make([]any, 0, min(n, 1024))
		for range n {
			v, err := decodeOrdered(d, depth+1)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		return list, nil
	case msgpcode.IsExt(c):
		if err := d.Skip(); err != nil {
			return nil, err
		}
		return extValue{}, nil
	}
	return d.DecodeInterface()
}

// toInt converts a decoded msgpack integer to int64.
func toInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		if x > 1<<63-1 {
			return 0, false
		}
		return int64(x), true
	}
	return 0, false
}

// toInts converts a decoded list of integers.
func toInts(v any) ([]int64, bool) {
	list, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]int64, len(list))
	for i, item := range list {
		if out[i], ok = toInt(item); !ok {
			return nil, false
		}
	}
	return out, true
}

// kindOf names the type of a decoded value for error messages.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "missing or nil"
	case *orderedMap:
		return "a map"
	case []any:
		return "a list"
	case string:
		return "a string"
	case []byte:
		return "binary data"
	case bool:
		return "a boolean"
	case float32, float64:
		return "a float"
	case extValue:
		return "a msgpack extension value (an inline array)"
	}
	if _, ok := toInt(v); ok {
		return "an integer"
	}
	return fmt.Sprintf("a %T", v)
}

// describe shows a short decoded value in an error message.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("%q", x)
	case []any:
		if len(x) <= 8 {
			return fmt.Sprintf("%v", x)
		}
	}
	if _, ok := toInt(v); ok {
		return fmt.Sprint(v)
	}
	return kindOf(v)
}
