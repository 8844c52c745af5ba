package zarr

import (
	"fmt"

	"ckptbench/tensor"
)

// dtypeStrings maps each tensor dtype to the zarr v2 dtype string that
// TensorStore writes for it. bfloat16 is TensorStore's extension to zarr
// v2; zarr-python does not know it.
var dtypeStrings = map[tensor.DType]string{
	tensor.Float16:  "<f2",
	tensor.BFloat16: "bfloat16",
	tensor.Float32:  "<f4",
	tensor.Float64:  "<f8",
	tensor.Int8:     "|i1",
	tensor.Uint8:    "|u1",
	tensor.Int32:    "<i4",
	tensor.Int64:    "<i8",
	tensor.Bool:     "|b1",
}

// DTypeString returns the zarr v2 dtype string for d, as TensorStore
// writes it.
func DTypeString(d tensor.DType) (string, error) {
	s, ok := dtypeStrings[d]
	if !ok {
		return "", fmt.Errorf("zarr: dtype %v has no zarr v2 equivalent", d)
	}
	return s, nil
}

// ParseDType returns the tensor dtype of a zarr v2 dtype string. It
// accepts the strings DTypeString returns and, for one-byte types, the
// equivalent "<" and ">" spellings. Big-endian multi-byte types and raw
// "<V2" bytes are rejected: the suite keeps payloads little-endian, and
// "<V2" is how zarr-python rewrites a bfloat16 array it could not read,
// which loses the dtype.
func ParseDType(s string) (tensor.DType, error) {
	for d, name := range dtypeStrings {
		if s == name {
			return d, nil
		}
	}
	if len(s) == 3 && (s[0] == '<' || s[0] == '>' || s[0] == '|') && s[2] == '1' {
		for d, name := range dtypeStrings {
			if name[0] == '|' && name[1:] == s[1:] {
				return d, nil
			}
		}
	}
	switch {
	case len(s) == 3 && s[0] == '>':
		return tensor.Invalid, fmt.Errorf("unsupported zarr dtype %q: big-endian data; re-save the array with the little-endian dtype %q", s, "<"+s[1:])
	case s == "<V2" || s == "|V2":
		return tensor.Invalid, fmt.Errorf("unsupported zarr dtype %q: untyped 2-byte values, which is what zarr-python writes for bfloat16; set the dtype to \"bfloat16\" if the values are bfloat16", s)
	}
	return tensor.Invalid, fmt.Errorf("unsupported zarr dtype %q (supported: <f2, bfloat16, <f4, <f8, |i1, |u1, <i4, <i8, |b1)", s)
}
