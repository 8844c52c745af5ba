//go:build torch

package libtorch

import (
	"fmt"
	"runtime"
	"slices"
	"unsafe"

	"github.com/sugarme/gotch/ts"

	"ckptbench/tensor"
)

// View returns a core tensor named name whose Data is x's memory, without
// a copy. x must be a contiguous CPU tensor of a supported dtype; the view
// is valid only until x is dropped.
func View(name string, x *ts.Tensor) (*tensor.Tensor, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ClearError()

	dev, err := x.Device()
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, Clean(err))
	}
	if dev.IsCuda() {
		return nil, fmt.Errorf("tensor %q is on %s:%d; only CPU memory can be viewed as bytes", name, dev.Name, dev.Value)
	}
	contiguous, err := x.IsContiguous()
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, Clean(err))
	}
	if !contiguous {
		return nil, fmt.Errorf("tensor %q is not contiguous; make a contiguous copy first", name)
	}
	dtype, err := CoreDType(x.DType())
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	shape, err := x.Size()
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, Clean(err))
	}

	t := &tensor.Tensor{Meta: tensor.Meta{Name: name, DType: dtype, Shape: slices.Clone(shape)}}
	n := t.NumBytes()
	if n < 0 {
		return nil, fmt.Errorf("tensor %q: invalid shape %v", name, shape)
	}
	if n == 0 {
		return t, nil
	}
	ptr, err := x.DataPtr()
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, Clean(err))
	}
	if ptr == nil {
		return nil, fmt.Errorf("tensor %q: libtorch returned a null data pointer for %d bytes", name, n)
	}
	t.Data = unsafe.Slice((*byte)(ptr), n)
	return t, nil
}
