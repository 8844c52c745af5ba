package t5x

import (
	"encoding/binary"
	"math"

	"github.com/x448/float16"

	"ckptbench/tensor"
)

func isFloat(d tensor.DType) bool {
	switch d {
	case tensor.Float16, tensor.BFloat16, tensor.Float32, tensor.Float64:
		return true
	}
	return false
}

// converter returns a copyBox run function that converts little-endian
// elements of dtype from to dtype to, rounding to nearest even where the
// target is narrower. Both dtypes must be floating-point. A float64
// source bound for float16 or bfloat16 is rounded to float32 first, which
// can differ from direct rounding in the last bit.
func converter(from, to tensor.DType) func(dst, src []byte) {
	read := floatReader(from)
	write := floatWriter(to)
	fs, ts := from.Size(), to.Size()
	return func(dst, src []byte) {
		for i, j := 0, 0; i < len(src); i, j = i+fs, j+ts {
			write(dst[j:j+ts], read(src[i:i+fs]))
		}
	}
}

func floatReader(d tensor.DType) func([]byte) float64 {
	switch d {
	case tensor.Float16:
		return func(b []byte) float64 {
			return float64(float16.Frombits(binary.LittleEndian.Uint16(b)).Float32())
		}
	case tensor.BFloat16:
		return func(b []byte) float64 {
			return float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(b)) << 16))
		}
	case tensor.Float32:
		return func(b []byte) float64 { return float64(math.Float32frombits(binary.LittleEndian.Uint32(b))) }
	default:
		return func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) }
	}
}

func floatWriter(d tensor.DType) func([]byte, float64) {
	switch d {
	case tensor.Float16:
		return func(b []byte, v float64) {
			binary.LittleEndian.PutUint16(b, float16.Fromfloat32(float32(v)).Bits())
		}
	case tensor.BFloat16:
		return func(b []byte, v float64) { binary.LittleEndian.PutUint16(b, bfloat16Bits(float32(v))) }
	case tensor.Float32:
		return func(b []byte, v float64) { binary.LittleEndian.PutUint32(b, math.Float32bits(float32(v))) }
	default:
		return func(b []byte, v float64) { binary.LittleEndian.PutUint64(b, math.Float64bits(v)) }
	}
}

// bfloat16Bits rounds v to the nearest bfloat16, ties to even, keeping
// NaN a NaN.
func bfloat16Bits(v float32) uint16 {
	b := math.Float32bits(v)
	if v != v {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}
