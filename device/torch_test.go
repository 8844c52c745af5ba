//go:build torch

package device

import (
	"strings"
	"testing"

	"ckptbench/model"
	"ckptbench/tensor"
)

// TestPlaceOnMissingGPU runs the CUDA path of Place where libtorch detects
// no GPU: it must fail with libtorch's message, not crash. On a GPU machine
// the same call copies the tensors, which TestPlaceOnGPU checks.
func TestPlaceOnMissingGPU(t *testing.T) {
	if Current().IsCUDA() {
		t.Skip("this machine has a GPU; TestPlaceOnGPU covers it")
	}
	gpu := Device{Index: 0, Name: "absent GPU"}
	p, err := Place(gpu, model.Synthetic(model.Tiny.Config, tensor.Float16, 1))
	if err == nil {
		p.Release()
		t.Fatal("Place on a GPU that libtorch does not detect succeeded, want an error")
	}
	if !strings.Contains(err.Error(), "libtorch:") {
		t.Errorf("error does not carry libtorch's message: %v", err)
	}
	if strings.Contains(err.Error(), "goroutine ") || strings.Contains(err.Error(), "frame #") {
		t.Errorf("error carries a stack trace: %v", err)
	}
	t.Logf("error: %v", err)
}

func TestPlaceOnGPU(t *testing.T) {
	d := Current()
	if !d.IsCUDA() {
		t.Skipf("no GPU: %s", d.Note)
	}
	sd := model.Synthetic(model.Tiny.Config, tensor.BFloat16, 1)
	p, err := Place(d, sd)
	if err != nil {
		t.Fatalf("Place(%v): %v", d, err)
	}
	defer p.Release()
	if p.NumBytes != sd.NumBytes() {
		t.Errorf("Place copied %d bytes, want %d", p.NumBytes, sd.NumBytes())
	}
}
