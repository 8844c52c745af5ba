package safetensors

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"ckptbench/tensor"
)

// MaxHeaderSize is the largest JSON header accepted, in bytes: the limit
// of the safetensors Rust crate (MAX_HEADER_SIZE in safetensors/src/tensor.rs),
// which keeps a corrupt length field from allocating gigabytes.
const MaxHeaderSize = 100_000_000

// ErrInvalidHeader is wrapped by every error about a header that is not
// valid safetensors: bad JSON, unknown dtypes, or offsets that do not tile
// the data section.
var ErrInvalidHeader = errors.New("invalid safetensors header")

// errUnsupportedDType marks a valid header with a dtype that the tensor
// package cannot hold, which re-downloading does not fix.
var errUnsupportedDType = errors.New("unsupported dtype")

// Entry is one tensor of a header.
type Entry struct {
	tensor.Meta
	// Begin and End delimit the payload in bytes, counted from the start
	// of the data section (the byte after the header).
	Begin, End int64
}

// Header is a parsed and validated safetensors header.
type Header struct {
	// Metadata is the __metadata__ map, or nil when the header has none.
	Metadata map[string]string
	// Tensors are in data-offset order.
	Tensors []Entry
	// Size is the JSON header's length N including padding, so the data
	// section starts at byte 8+N of the file.
	Size int64
}

// DataOffset returns the file offset of the data section.
func (h *Header) DataOffset() int64 { return 8 + h.Size }

// The safetensors dtype names of the dtypes this package stores. The
// format also defines I16, U16, U32, U64 and float8 types, which the
// tensor package has no dtype for.
var dtypeNames = map[tensor.DType]string{
	tensor.Bool:     "BOOL",
	tensor.Uint8:    "U8",
	tensor.Int8:     "I8",
	tensor.Int32:    "I32",
	tensor.Int64:    "I64",
	tensor.Float16:  "F16",
	tensor.BFloat16: "BF16",
	tensor.Float32:  "F32",
	tensor.Float64:  "F64",
}

func parseDTypeName(s string) (tensor.DType, error) {
	for d, name := range dtypeNames {
		if name == s {
			return d, nil
		}
	}
	names := slices.Sorted(maps.Values(dtypeNames))
	return tensor.Invalid, fmt.Errorf("%w %q: convert the tensor to one of %s before saving", errUnsupportedDType, s, strings.Join(names, ", "))
}

// ParseHeader parses the JSON header b of a file whose data section is
// dataLen bytes long, and checks every tensor's dtype, shape and offsets.
// Each tensor's byte range must match its shape, and the ranges must tile
// the data section with no overlap, gap or trailing bytes. Errors wrap
// ErrInvalidHeader and name the tensor at fault.
func ParseHeader(b []byte, dataLen int64) (*Header, error) {
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("%w: the JSON is not valid UTF-8", ErrInvalidHeader)
	}
	h := &Header{Size: int64(len(b))}
	dec := json.NewDecoder(bytes.NewReader(b))
	seen := make(map[string]bool)
	err := decodeObject(dec, "header", func(key string) error {
		if seen[key] {
			return fmt.Errorf("key %q appears twice", key)
		}
		seen[key] = true
		if key == "__metadata__" {
			return decodeMetadata(dec, h)
		}
		e, err := decodeEntry(dec, key)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", key, err)
		}
		h.Tensors = append(h.Tensors, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidHeader, err)
	}
	// Trailing spaces pad the header to a multiple of 8 bytes; anything
	// else after the object is an error.
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: unexpected data after the JSON object at byte %d", ErrInvalidHeader, dec.InputOffset())
	}
	if err := checkOffsets(h.Tensors, dataLen); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidHeader, err)
	}
	return h, nil
}

// decodeObject reads one JSON object from dec and calls value for each
// key, which must consume the key's value from dec.
func decodeObject(dec *json.Decoder, what string, value func(key string) error) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("%s is not valid JSON: %w", what, err)
	}
	if tok != json.Delim('{') {
		return fmt.Errorf("%s is %v, not a JSON object", what, describeToken(tok))
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%s is not valid JSON: %w", what, err)
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("%s is not valid JSON: key %v is not a string", what, tok)
		}
		if err := value(key); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return fmt.Errorf("%s is not valid JSON: %w", what, err)
	}
	return nil
}

func describeToken(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		return fmt.Sprintf("a JSON value starting with %q", string(v))
	case string:
		return fmt.Sprintf("the string %q", v)
	case nil:
		return "null"
	default:
		return fmt.Sprintf("%v", v)
	}
}

func decodeMetadata(dec *json.Decoder, h *Header) error {
	h.Metadata = make(map[string]string)
	return decodeObject(dec, "__metadata__", func(key string) error {
		if _, dup := h.Metadata[key]; dup {
			return fmt.Errorf("__metadata__ key %q appears twice", key)
		}
		var v string
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("__metadata__ value of %q must be a string: %w", key, err)
		}
		h.Metadata[key] = v
		return nil
	})
}

// decodeEntry reads one tensor's {"dtype", "shape", "data_offsets"}
// object. Keys match exactly, unlike encoding/json's case-insensitive
// struct fields; unknown keys are ignored, as the Rust crate does.
func decodeEntry(dec *json.Decoder, name string) (Entry, error) {
	if name == "" {
		return Entry{}, errors.New("empty tensor name")
	}
	var (
		dtype   *string
		shape   *[]int64
		offsets *[]int64
	)
	err := decodeObject(dec, "entry", func(key string) error {
		var dst any
		switch key {
		case "dtype":
			if dtype != nil {
				return errors.New(`key "dtype" appears twice`)
			}
			dtype = new(string)
			dst = dtype
		case "shape":
			if shape != nil {
				return errors.New(`key "shape" appears twice`)
			}
			shape = new([]int64)
			dst = shape
		case "data_offsets":
			if offsets != nil {
				return errors.New(`key "data_offsets" appears twice`)
			}
			offsets = new([]int64)
			dst = offsets
		default:
			dst = new(json.RawMessage)
		}
		if err := dec.Decode(dst); err != nil {
			return fmt.Errorf("invalid %q: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return Entry{}, err
	}

	switch {
	case dtype == nil:
		return Entry{}, errors.New(`missing "dtype"`)
	case shape == nil || *shape == nil:
		return Entry{}, errors.New(`missing "shape"`)
	case offsets == nil || len(*offsets) != 2:
		return Entry{}, errors.New(`"data_offsets" must be a list of two integers [begin, end]`)
	}
	return newEntry(name, *dtype, *shape, (*offsets)[0], (*offsets)[1])
}

// newEntry checks one tensor's dtype name, shape and byte range.
func newEntry(name, dtype string, shape []int64, begin, end int64) (Entry, error) {
	d, err := parseDTypeName(dtype)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Meta: tensor.Meta{Name: name, DType: d, Shape: shape}, Begin: begin, End: end}
	for _, dim := range shape {
		if dim < 0 {
			return Entry{}, fmt.Errorf("shape %v has a negative dimension", shape)
		}
	}
	want := e.NumBytes()
	if want < 0 {
		return Entry{}, fmt.Errorf("shape %v of %s overflows int64 bytes", shape, dtype)
	}
	if begin < 0 || end < begin {
		return Entry{}, fmt.Errorf("data_offsets [%d, %d] are not an ascending pair of non-negative offsets", begin, end)
	}
	if got := end - begin; got != want {
		return Entry{}, fmt.Errorf("data_offsets [%d, %d] span %d bytes, but shape %v of %s needs %d", begin, end, got, shape, dtype, want)
	}
	return e, nil
}

// checkOffsets sorts entries by offset and checks that they tile the
// data section [0, dataLen) exactly.
func checkOffsets(entries []Entry, dataLen int64) error {
	slices.SortStableFunc(entries, func(a, b Entry) int {
		if a.Begin != b.Begin {
			return cmp.Compare(a.Begin, b.Begin)
		}
		return cmp.Compare(a.End, b.End)
	})
	var end int64
	prev := ""
	for _, e := range entries {
		if e.End > dataLen {
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] run past the end of the %d-byte data section (is the file truncated?)", e.Name, e.Begin, e.End, dataLen)
		}
		switch {
		case e.Begin < end:
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] overlap tensor %q, which ends at %d", e.Name, e.Begin, e.End, prev, end)
		case e.Begin > end && prev == "":
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] leave a gap of %d bytes at the start of the data section", e.Name, e.Begin, e.End, e.Begin)
		case e.Begin > end:
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] leave a gap of %d bytes after tensor %q", e.Name, e.Begin, e.End, e.Begin-end, prev)
		}
		end, prev = e.End, e.Name
	}
	if end != dataLen {
		return fmt.Errorf("the tensors cover %d bytes of the %d-byte data section; %d bytes at the end belong to no tensor", end, dataLen, dataLen-end)
	}
	return nil
}

// encodeHeader returns the file prefix for tensors: the 8-byte header
// length and the JSON header, padded with spaces to a multiple of 8 bytes
// so the data section starts 8-byte aligned.
func encodeHeader(tensors []*tensor.Tensor, metadata map[string]string) ([]byte, error) {
	var b bytes.Buffer
	b.Write(make([]byte, 8))
	b.WriteByte('{')
	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, fmt.Errorf("__metadata__ entry %q: %q is not valid UTF-8, which JSON cannot store", k, v)
		}
	}
	if len(metadata) > 0 {
		b.WriteString(`"__metadata__":{`)
		for i, k := range slices.Sorted(maps.Keys(metadata)) {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(&b, k)
			b.WriteByte(':')
			writeJSONString(&b, metadata[k])
		}
		b.WriteByte('}')
	}

	var offset int64
	for i, t := range tensors {
		if !utf8.ValidString(t.Name) {
			return nil, fmt.Errorf("tensor %q: the name is not valid UTF-8, which JSON cannot store", t.Name)
		}
		name, ok := dtypeNames[t.DType]
		if !ok {
			return nil, fmt.Errorf("tensor %q: dtype %s has no safetensors equivalent", t.Name, t.DType)
		}
		if i > 0 || len(metadata) > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, t.Name)
		fmt.Fprintf(&b, `:{"dtype":%q,"shape":[`, name)
		for j, d := range t.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%d", d)
		}
		end := offset + int64(len(t.Data))
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	b.WriteByte('}')

	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	out := b.Bytes()
	n := int64(len(out) - 8)
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("the header would be %d bytes, more than the %d that readers accept; save fewer tensors per file", n, MaxHeaderSize)
	}
	binary.LittleEndian.PutUint64(out, uint64(n))
	return out, nil
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // marshaling a string cannot fail
	b.Write(enc)
}
