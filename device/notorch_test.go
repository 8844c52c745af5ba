//go:build !torch

package device

import (
	"strings"
	"testing"

	"ckptbench/model"
	"ckptbench/tensor"
)

func TestCurrentWithoutLibtorch(t *testing.T) {
	d := Current()
	if d.IsCUDA() {
		t.Fatalf("Current() = %v without libtorch, want cpu", d)
	}
	if !strings.Contains(d.Note, "libtorch is not built in") {
		t.Errorf("Current().Note = %q, want it to say libtorch is not built in", d.Note)
	}
}

func TestPlaceOnGPUWithoutLibtorch(t *testing.T) {
	gpu := Device{Index: 0, Name: "NVIDIA H200"}
	_, err := Place(gpu, model.Synthetic(model.Tiny.Config, tensor.Float16, 1))
	if err == nil || !strings.Contains(err.Error(), "libtorch is not built in") {
		t.Errorf("Place(%v): got %v, want an error saying libtorch is not built in", gpu, err)
	}
}
