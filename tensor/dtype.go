package tensor

import "fmt"

// DType is the element type of a tensor's payload.
type DType uint8

// The dtypes the suite stores. Checkpoints of LLaMA-family models use the
// first three; the integer types appear in auxiliary tensors and tests.
const (
	Invalid DType = iota
	Float16
	BFloat16
	Float32
	Float64
	Int8
	Uint8
	Int32
	Int64
	Bool
)

var dtypeInfo = [...]struct {
	name string
	size int
}{
	Invalid:  {"invalid", 0},
	Float16:  {"float16", 2},
	BFloat16: {"bfloat16", 2},
	Float32:  {"float32", 4},
	Float64:  {"float64", 8},
	Int8:     {"int8", 1},
	Uint8:    {"uint8", 1},
	Int32:    {"int32", 4},
	Int64:    {"int64", 8},
	Bool:     {"bool", 1},
}

// String returns the PyTorch name of the dtype without its "torch." prefix,
// for example "float16".
func (d DType) String() string {
	if int(d) < len(dtypeInfo) {
		return dtypeInfo[d].name
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Size returns the size of one element in bytes, or 0 for Invalid.
func (d DType) Size() int {
	if int(d) < len(dtypeInfo) {
		return dtypeInfo[d].size
	}
	return 0
}

// ParseDType returns the dtype named by s, which is a PyTorch dtype name
// such as "float16", with or without the "torch." prefix.
func ParseDType(s string) (DType, error) {
	name := s
	if len(name) > 6 && name[:6] == "torch." {
		name = name[6:]
	}
	for d := Float16; int(d) < len(dtypeInfo); d++ {
		if dtypeInfo[d].name == name {
			return d, nil
		}
	}
	switch name {
	case "half":
		return Float16, nil
	case "float":
		return Float32, nil
	}
	return Invalid, fmt.Errorf("tensor: unknown dtype %q (want one of float16, bfloat16, float32, float64, int8, uint8, int32, int64, bool)", s)
}

// MarshalText implements encoding.TextMarshaler so dtypes read well in JSON.
func (d DType) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *DType) UnmarshalText(b []byte) error {
	v, err := ParseDType(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}
