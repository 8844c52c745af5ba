//go:build torch

package libtorch

import (
	"fmt"

	"github.com/sugarme/gotch"

	"ckptbench/tensor"
)

// torchDTypes maps each core dtype to libtorch's scalar type.
var torchDTypes = map[tensor.DType]gotch.DType{
	tensor.Float16:  gotch.Half,
	tensor.BFloat16: gotch.BFloat16,
	tensor.Float32:  gotch.Float,
	tensor.Float64:  gotch.Double,
	tensor.Int8:     gotch.Int8,
	tensor.Uint8:    gotch.Uint8,
	tensor.Int32:    gotch.Int,
	tensor.Int64:    gotch.Int64,
	tensor.Bool:     gotch.Bool,
}

// TorchDType returns libtorch's scalar type for d.
func TorchDType(d tensor.DType) (gotch.DType, error) {
	if td, ok := torchDTypes[d]; ok {
		return td, nil
	}
	return gotch.Invalid, fmt.Errorf("dtype %v has no libtorch equivalent", d)
}

// CoreDType returns the core dtype for libtorch's scalar type td.
func CoreDType(td gotch.DType) (tensor.DType, error) {
	for d, t := range torchDTypes {
		if t == td {
			return d, nil
		}
	}
	return tensor.Invalid, fmt.Errorf("libtorch dtype %v is not supported (supported: float16, bfloat16, float32, float64, int8, uint8, int32, int64, bool)", td)
}
