//go:build torch

package libtorch

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"ckptbench/tensor"
)

func TestDTypeRoundTrip(t *testing.T) {
	for d := tensor.Float16; d <= tensor.Bool; d++ {
		td, err := TorchDType(d)
		if err != nil {
			t.Errorf("TorchDType(%v): %v", d, err)
			continue
		}
		if td.Size() != uint(d.Size()) {
			t.Errorf("%v maps to libtorch %v of %d bytes, want %d", d, td, td.Size(), d.Size())
		}
		back, err := CoreDType(td)
		if err != nil || back != d {
			t.Errorf("CoreDType(TorchDType(%v)) = %v, %v", d, back, err)
		}
	}
	if _, err := TorchDType(tensor.Invalid); err == nil {
		t.Error("TorchDType(Invalid) succeeded, want an error")
	}
}

// TestBorrowSharesMemory checks that Borrow copies nothing: the libtorch
// tensor's data pointer is the payload's address, and View of it returns
// the same bytes at the same address.
func TestBorrowSharesMemory(t *testing.T) {
	for _, c := range []struct {
		dtype tensor.DType
		shape []int64
	}{
		{tensor.BFloat16, []int64{3, 5}},
		{tensor.Float16, []int64{2, 1, 4}},
		{tensor.Float32, nil},
		{tensor.Int64, []int64{0, 4}},
	} {
		t.Run(fmt.Sprintf("%v%v", c.dtype, c.shape), func(t *testing.T) {
			src := tensor.New("w", c.dtype, c.shape...)
			for i := range src.Data {
				src.Data[i] = byte(i + 1)
			}
			b, err := Borrow(src)
			if err != nil {
				t.Fatalf("Borrow: %v", err)
			}
			defer b.Drop()

			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			ptr, err := b.Tensor.DataPtr()
			if err != nil {
				t.Fatalf("DataPtr: %v", err)
			}
			if len(src.Data) > 0 && ptr != unsafe.Pointer(&src.Data[0]) {
				t.Errorf("libtorch data at %p, payload at %p: Borrow copied", ptr, &src.Data[0])
			}

			view, err := View("w", b.Tensor)
			if err != nil {
				t.Fatalf("View: %v", err)
			}
			if view.DType != src.DType || !slices.Equal(view.Shape, src.Shape) {
				t.Errorf("View gave %v, want %v", view.Meta, src.Meta)
			}
			if string(view.Data) != string(src.Data) {
				t.Errorf("View bytes differ from the payload")
			}
			if len(src.Data) > 0 && &view.Data[0] != &src.Data[0] {
				t.Errorf("View data at %p, payload at %p: View copied", &view.Data[0], &src.Data[0])
			}
		})
	}
}

func TestBorrowRejectsInvalid(t *testing.T) {
	bad := tensor.New("layers.0.weight", tensor.Float16, 4)
	bad.Data = bad.Data[:5]
	if _, err := Borrow(bad); err == nil || !strings.Contains(err.Error(), "layers.0.weight") {
		t.Errorf("Borrow of a short payload: got %v, want an error naming the tensor", err)
	}
}

func TestViewRejectsNonContiguous(t *testing.T) {
	src := tensor.New("w", tensor.Float32, 3, 5)
	b, err := Borrow(src)
	if err != nil {
		t.Fatalf("Borrow: %v", err)
	}
	defer b.Drop()

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	transposed, err := b.Tensor.T(false)
	if err != nil {
		t.Fatalf("T: %v", err)
	}
	defer transposed.Drop()
	if _, err := View("w.T", transposed); err == nil || !strings.Contains(err.Error(), "not contiguous") {
		t.Errorf("View of a transpose: got %v, want an error saying it is not contiguous", err)
	}
}

func TestClean(t *testing.T) {
	raw := errors.New("To() failed: Libtorch API Error: Found no NVIDIA driver on your system.\nException raised from lazyInitCUDA at x.cpp:1\nframe #0: f()\n\ngoroutine 7 [running]:\nmain.main()\n")
	want := "To() failed: libtorch: Found no NVIDIA driver on your system."
	if got := Clean(raw).Error(); got != want {
		t.Errorf("Clean = %q, want %q", got, want)
	}
	other := errors.New("open x: no such file")
	if got := Clean(other); got != other {
		t.Errorf("Clean changed an error that is not libtorch's: %v", got)
	}
	if Clean(nil) != nil {
		t.Error("Clean(nil) is not nil")
	}
}
