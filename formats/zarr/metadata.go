package zarr

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/x448/float16"

	"ckptbench/iox"
	"ckptbench/tensor"
)

// MetadataFile is the name of a zarr v2 array's metadata file.
const MetadataFile = ".zarray"

// ErrMetadata is wrapped by every error about an invalid .zarray file.
var ErrMetadata = errors.New("invalid zarr metadata")

// Metadata is the content of a zarr v2 .zarray file.
type Metadata struct {
	ZarrFormat int     `json:"zarr_format"`
	Shape      []int64 `json:"shape"`
	Chunks     []int64 `json:"chunks"`
	DType      string  `json:"dtype"`
	// Compressor is JSON null (or empty) for uncompressed chunks, else an
	// object with an "id" and the codec's settings, e.g.
	// {"id":"gzip","level":1}.
	Compressor json.RawMessage `json:"compressor"`
	// FillValue is the JSON value that chunks missing from the store read
	// as: a number, "NaN", "Infinity", "-Infinity", a boolean, or null,
	// which TensorStore reads as zero.
	FillValue json.RawMessage `json:"fill_value"`
	Order     string          `json:"order"`
	// Filters must be null or an empty list, because TensorStore
	// supports no filters.
	Filters json.RawMessage `json:"filters"`
	// DimensionSeparator joins chunk indexes in chunk keys: "." (the
	// default when empty) or "/".
	DimensionSeparator string `json:"dimension_separator,omitempty"`
}

// ReadMetadata reads and validates dir/.zarray.
func ReadMetadata(dir string) (Metadata, error) {
	path := filepath.Join(dir, MetadataFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Metadata{}, fmt.Errorf("zarr: read metadata: %w; the array is incomplete, so restore the checkpoint from a copy or re-save it", err)
	}
	if err != nil {
		return Metadata{}, fmt.Errorf("zarr: read metadata: %w", err)
	}
	md, err := ParseMetadata(b)
	if err != nil {
		return Metadata{}, fmt.Errorf("zarr: %s: %w; the file is damaged, so restore the checkpoint from a copy or re-save it", path, err)
	}
	return md, nil
}

// ParseMetadata decodes and validates the JSON of a .zarray file.
func ParseMetadata(b []byte) (Metadata, error) {
	if err := checkKeys(b); err != nil {
		return Metadata{}, err
	}
	var md Metadata
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&md); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field == "dtype" {
			return Metadata{}, fmt.Errorf("%w: dtype must be a string; structured dtypes are not supported", ErrMetadata)
		}
		return Metadata{}, fmt.Errorf("%w: %v", ErrMetadata, err)
	}
	if dec.More() {
		return Metadata{}, fmt.Errorf("%w: data after the JSON object", ErrMetadata)
	}
	if err := md.Validate(); err != nil {
		return Metadata{}, err
	}
	return md, nil
}

// metadataKeys are the .zarray keys; encoding/json would also match them
// in any letter case, which TensorStore does not.
var metadataKeys = []string{"zarr_format", "shape", "chunks", "dtype", "compressor", "fill_value", "order", "filters", "dimension_separator"}

// checkKeys rejects keys that differ from a .zarray key only in letter
// case, such as "Shape", so that such a file is not read differently
// from TensorStore. Other unknown keys are ignored.
func checkKeys(b []byte) error {
	var obj map[string]json.RawMessage
	if json.Unmarshal(b, &obj) != nil {
		return nil // ParseMetadata reports the syntax error.
	}
	for k := range obj {
		for _, known := range metadataKeys {
			if k != known && strings.EqualFold(k, known) {
				return fmt.Errorf("%w: key %q, want %q", ErrMetadata, k, known)
			}
		}
	}
	return nil
}

// WriteMetadata writes md to dir/.zarray and fsyncs the file. It does not
// sync dir itself; the caller syncs the directory once all of the array's
// files exist.
func WriteMetadata(dir string, md Metadata) error {
	if err := md.Validate(); err != nil {
		return fmt.Errorf("zarr: write metadata in %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(md, "", "    ")
	if err != nil {
		return fmt.Errorf("zarr: write metadata in %s: %w", dir, err)
	}
	return writeFileSync(filepath.Join(dir, MetadataFile), b)
}

// writeFileSync is iox.WriteFileSync with this package's error prefix.
func writeFileSync(path string, data []byte) error {
	if err := iox.WriteFileSync(path, data); err != nil {
		return fmt.Errorf("zarr: %w", err)
	}
	return nil
}

// Validate checks that md describes an array this package can read or
// write: zarr_format 2, C order, no filters, a known dtype and fill value,
// one positive chunk length per dimension and sizes that fit in int64.
// A compressor this package cannot decode is not an error here, so that
// the metadata of such arrays can still be inspected.
func (md Metadata) Validate() error {
	if md.ZarrFormat != 2 {
		return fmt.Errorf("%w: zarr_format is %d, want 2", ErrMetadata, md.ZarrFormat)
	}
	if len(md.Chunks) != len(md.Shape) {
		return fmt.Errorf("%w: chunks %v has %d dimensions but shape %v has %d", ErrMetadata, md.Chunks, len(md.Chunks), md.Shape, len(md.Shape))
	}
	dtype, err := ParseDType(md.DType)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMetadata, err)
	}

	for i := range md.Shape {
		if md.Shape[i] < 0 {
			return fmt.Errorf("%w: negative dimension %d in shape %v", ErrMetadata, md.Shape[i], md.Shape)
		}
		if md.Chunks[i] < 1 {
			return fmt.Errorf("%w: chunk length %d in chunks %v is not positive", ErrMetadata, md.Chunks[i], md.Chunks)
		}
	}
	if (tensor.Meta{DType: dtype, Shape: md.Shape}).NumBytes() < 0 {
		return fmt.Errorf("%w: shape %v of %s overflows int64 bytes", ErrMetadata, md.Shape, dtype)
	}
	if (tensor.Meta{DType: dtype, Shape: md.Chunks}).NumBytes() < 0 {
		return fmt.Errorf("%w: chunks %v of %s overflow int64 bytes", ErrMetadata, md.Chunks, dtype)
	}

	if md.Order != "C" {
		return fmt.Errorf("%w: order %q is not supported; re-save the array in C order", ErrMetadata, md.Order)
	}
	if f := bytes.TrimSpace(md.Filters); len(f) > 0 && !bytes.Equal(f, []byte("null")) && !isEmptyList(f) {
		return fmt.Errorf("%w: filters %s are not supported; re-save the array with filters null", ErrMetadata, f)
	}
	switch md.DimensionSeparator {
	case "", ".", "/":
	default:
		return fmt.Errorf("%w: dimension_separator %q, want \".\" or \"/\"", ErrMetadata, md.DimensionSeparator)
	}
	if _, err := compressorID(md.Compressor); err != nil {
		return err
	}
	if _, err := md.FillBytes(); err != nil {
		return err
	}
	return nil
}

func isEmptyList(b []byte) bool {
	var list []json.RawMessage
	return json.Unmarshal(b, &list) == nil && len(list) == 0
}

// TensorDType returns the tensor dtype of md.DType.
func (md Metadata) TensorDType() (tensor.DType, error) {
	d, err := ParseDType(md.DType)
	if err != nil {
		return tensor.Invalid, fmt.Errorf("%w: %v", ErrMetadata, err)
	}
	return d, nil
}

// Separator returns the dimension separator, "." when none is set.
func (md Metadata) Separator() string {
	if md.DimensionSeparator == "" {
		return "."
	}
	return md.DimensionSeparator
}

// compressorID returns the "id" of a compressor object, or "raw" for null.
func compressorID(c json.RawMessage) (string, error) {
	c = bytes.TrimSpace(c)
	if len(c) == 0 || bytes.Equal(c, []byte("null")) {
		return "raw", nil
	}
	var obj struct {
		ID *string `json:"id"`
	}
	if err := json.Unmarshal(c, &obj); err != nil {
		return "", fmt.Errorf("%w: compressor %s is neither null nor an object with an id", ErrMetadata, c)
	}
	if obj.ID == nil || *obj.ID == "" {
		return "", fmt.Errorf("%w: compressor %s has no id", ErrMetadata, c)
	}
	return *obj.ID, nil
}

// FillBytes returns one element of the fill value, little-endian, in the
// array's dtype. A null fill value is zero, as in TensorStore.
func (md Metadata) FillBytes() ([]byte, error) {
	dtype, err := md.TensorDType()
	if err != nil {
		return nil, err
	}
	out := make([]byte, dtype.Size())
	raw := bytes.TrimSpace(md.FillValue)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return out, nil
	}
	bad := func(why string) error {
		return fmt.Errorf("%w: fill_value %s is not a valid %s: %s", ErrMetadata, raw, md.DType, why)
	}
	if dtype == tensor.Bool {
		var v bool
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, bad("want true or false")
		}
		if v {
			out[0] = 1
		}
		return out, nil
	}

	var f float64
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "NaN":
			f = math.NaN()
		case "Infinity":
			f = math.Inf(1)
		case "-Infinity":
			f = math.Inf(-1)
		default:
			return nil, bad(`want a number, "NaN", "Infinity" or "-Infinity"`)
		}
	} else if err := json.Unmarshal(raw, &f); err != nil {
		return nil, bad("want a number")
	}

	switch dtype {
	case tensor.Float16:
		binary.LittleEndian.PutUint16(out, float16.Fromfloat32(float32(f)).Bits())
	case tensor.BFloat16:
		binary.LittleEndian.PutUint16(out, bfloat16Bits(float32(f)))
	case tensor.Float32:
		binary.LittleEndian.PutUint32(out, math.Float32bits(float32(f)))
	case tensor.Float64:
		binary.LittleEndian.PutUint64(out, math.Float64bits(f))
	default:
		lo, hi := intRange(dtype)
		if f != math.Trunc(f) || f < lo || f > hi {
			return nil, bad(fmt.Sprintf("want an integer in [%v, %v]", lo, hi))
		}
		switch dtype.Size() {
		case 1:
			out[0] = byte(int64(f))
		case 4:
			binary.LittleEndian.PutUint32(out, uint32(int32(f)))
		case 8:
			binary.LittleEndian.PutUint64(out, uint64(int64(f)))
		}
	}
	return out, nil
}

// intRange returns the range of an integer dtype as float64 (exact
// for int64 only up to 2^53, which is enough for fill values).
func intRange(d tensor.DType) (lo, hi float64) {
	switch d {
	case tensor.Int8:
		return math.MinInt8, math.MaxInt8
	case tensor.Uint8:
		return 0, math.MaxUint8
	case tensor.Int32:
		return math.MinInt32, math.MaxInt32
	default:
		return -(1 << 63), 1<<63 - 1024
	}
}

// bfloat16Bits rounds v to the nearest bfloat16, ties to even.
func bfloat16Bits(v float32) uint16 {
	b := math.Float32bits(v)
	if v != v {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}
