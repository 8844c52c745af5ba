//go:build torch

package libtorch

/*
#include <stddef.h>
#include <stdint.h>

// at_tensor_of_blob is defined in gotch v0.9.1's libtch/torch_api.cpp,
// which is linked into every binary that imports gotch, but gotch's Go API
// does not wrap it. It returns a new torch::Tensor* over data (no copy and
// no ownership: the memory must outlive the tensor), or NULL after setting
// libtorch's last error. device is -1 for the CPU.
void *at_tensor_of_blob(void *data, int64_t *dims, size_t ndims,
                        int64_t *strides, size_t nstrides, int type, int device);
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/sugarme/gotch/ts"

	"ckptbench/tensor"
)

// Borrowed is a libtorch CPU tensor over a core tensor's payload. No copy
// is made, so the Go memory stays pinned until Drop, and it must not be
// changed while libtorch uses it.
type Borrowed struct {
	// Tensor is the libtorch tensor. It is valid until Drop.
	Tensor *ts.Tensor
	pinner runtime.Pinner
}

// Borrow lends t's payload to libtorch as a contiguous CPU tensor of the
// same dtype and shape, without copying it (libtorch's from_blob). The
// caller must Drop the result before it changes or frees t.Data.
//
// The payload is pinned (runtime.Pinner) because libtorch keeps its
// address after the cgo call returns, which cgo allows only for pinned
// memory. Data that is not Go memory, such as a memory map, needs no pin.
func Borrow(t *tensor.Tensor) (*Borrowed, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	td, err := TorchDType(t.DType)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	dims := t.Shape
	strides := contiguousStrides(dims)
	var dimsPtr, stridesPtr *C.int64_t
	if len(dims) > 0 {
		dimsPtr = (*C.int64_t)(unsafe.Pointer(&dims[0]))
		stridesPtr = (*C.int64_t)(unsafe.Pointer(&strides[0]))
	}

	b := &Borrowed{}
	// A zero-size tensor has no payload to lend; libtorch accepts NULL.
	var data unsafe.Pointer
	if len(t.Data) > 0 {
		data = unsafe.Pointer(unsafe.SliceData(t.Data))
		b.pinner.Pin(data)
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ClearError()
	ctensor := C.at_tensor_of_blob(data, dimsPtr, C.size_t(len(dims)), stridesPtr, C.size_t(len(strides)), C.int(td.CKind()), -1)
	if err := ts.TorchErr(); err != nil || ctensor == nil {
		b.pinner.Unpin()
		if err == nil {
			err = fmt.Errorf("libtorch returned no tensor")
		}
		return nil, fmt.Errorf("tensor %q: wrap payload: %w", t.Name, Clean(err))
	}
	b.Tensor = ts.FromCtensor(ctensor)
	return b, nil
}

// Drop frees the libtorch tensor and unpins the payload. It is safe to
// call twice.
func (b *Borrowed) Drop() error {
	var err error
	if b.Tensor != nil {
		err = b.Tensor.Drop()
		b.Tensor = nil
	}
	b.pinner.Unpin()
	return err
}

// contiguousStrides returns the C-order strides, in elements, of shape.
func contiguousStrides(shape []int64) []int64 {
	strides := make([]int64, len(shape))
	step := int64(1)
	for i := len(shape) - 1; i >= 0; i-- {
		strides[i] = step
		step *= max(shape[i], 1)
	}
	return strides
}
