package tensor

import (
	"fmt"
	"math"
	"slices"
)

// Meta is a tensor without its payload: what go-cmp compares in round-trip
// tests and what a model's inventory lists.
type Meta struct {
	Name  string
	DType DType
	Shape []int64
}

// NumElements returns the product of the shape; 1 for a scalar.
// It returns -1 when a dimension is negative or the product overflows int64.
func (m Meta) NumElements() int64 {
	n := int64(1)
	for _, d := range m.Shape {
		if d < 0 {
			return -1
		}
		if d != 0 && n > math.MaxInt64/d {
			return -1
		}
		n *= d
	}
	return n
}

// NumBytes returns the payload size in bytes, or -1 for an invalid shape.
func (m Meta) NumBytes() int64 {
	n := m.NumElements()
	if n < 0 || n > math.MaxInt64/int64(max(m.DType.Size(), 1)) {
		return -1
	}
	return n * int64(m.DType.Size())
}

// String formats the metadata as name[dim,dim]dtype for error messages.
func (m Meta) String() string {
	return fmt.Sprintf("%s%v %s", m.Name, m.Shape, m.DType)
}

// Tensor is a named, dense, C-order tensor whose payload is held as raw
// little-endian bytes. Data may point at memory owned by something else
// (a libtorch tensor, a memory map); the StateDict that returned the tensor
// keeps it valid until Close.
type Tensor struct {
	Meta
	Data []byte
}

// New returns a tensor with a zeroed payload of the right size.
func New(name string, dtype DType, shape ...int64) *Tensor {
	m := Meta{Name: name, DType: dtype, Shape: slices.Clone(shape)}
	n := m.NumBytes()
	if n < 0 {
		panic(fmt.Sprintf("tensor.New: invalid shape %v for %s", shape, name))
	}
	return &Tensor{Meta: m, Data: make([]byte, n)}
}

// Validate reports whether the tensor's dtype, shape and payload length
// agree, with an error that names the tensor.
func (t *Tensor) Validate() error {
	if t.DType.Size() == 0 {
		return fmt.Errorf("tensor %q: invalid dtype %v", t.Name, t.DType)
	}
	want := t.NumBytes()
	if want < 0 {
		return fmt.Errorf("tensor %q: invalid shape %v", t.Name, t.Shape)
	}
	if int64(len(t.Data)) != want {
		return fmt.Errorf("tensor %q: payload is %d bytes, but %v of %s needs %d", t.Name, len(t.Data), t.Shape, t.DType, want)
	}
	return nil
}
