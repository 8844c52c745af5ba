//go:build !torch

package torchsave

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"ckptbench/model"
	"ckptbench/tensor"
)

func TestWithoutLibtorch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ckpt.pt")
	err := New().Save(path, model.Synthetic(model.Tiny.Config, tensor.Float16, 1))
	if !errors.Is(err, ErrNoLibtorch) {
		t.Errorf("Save: got %v, want ErrNoLibtorch", err)
	}
	if _, err := New().Load(path); !errors.Is(err, ErrNoLibtorch) {
		t.Errorf("Load: got %v, want ErrNoLibtorch", err)
	}
	if !strings.Contains(ErrNoLibtorch.Error(), "scripts/gotch/setup.sh") {
		t.Errorf("ErrNoLibtorch does not say how to build with libtorch: %v", ErrNoLibtorch)
	}
}

func TestNameAndCodec(t *testing.T) {
	if got := New().Name(); got != "torchsave" {
		t.Errorf("Name() = %q, want torchsave", got)
	}
	if got := New().Codec(); got != "" {
		t.Errorf("Codec() = %q, want empty", got)
	}
}
