package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ckptbench/formats/safetensors"
	"ckptbench/model"
	"ckptbench/tensor"
)

// TestSetupStoredDType gives NewSetup a model directory whose config.json
// names float32 while the weights are stored as float16, which a published
// config can do. The results must state the stored dtype and size.
func TestSetupStoredDType(t *testing.T) {
	dir := t.TempDir()
	cfg := model.Tiny.Config
	cfg.TorchDType = "float32"
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	sd := model.Synthetic(model.Tiny.Config, tensor.Float16, 3)
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), sd); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BENCH_MODEL_DIR", dir)
	t.Setenv("BENCH_DIR", t.TempDir())

	s, err := NewSetup()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	if s.DType != tensor.Float16 {
		t.Errorf("DType = %s, want float16, the dtype of the stored weights", s.DType)
	}
	desc := s.Describe("cpu")
	for _, want := range []string{"dtype: float16\n", fmt.Sprintf("tensor-bytes: %d\n", sd.NumBytes())} {
		if !strings.Contains(desc, want) {
			t.Errorf("Describe lacks %q:\n%s", strings.TrimSpace(want), desc)
		}
	}
}

// TestSetupDamagedDir checks that NewSetup reads the weights, so that a
// directory missing a tensor fails once, before any benchmark runs.
func TestSetupDamagedDir(t *testing.T) {
	dir := t.TempDir()
	b, err := json.Marshal(model.Tiny.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	full := model.Synthetic(model.Tiny.Config, tensor.Float16, 3)
	missing := full.Tensors[len(full.Tensors)-1].Name
	part := &tensor.StateDict{}
	for _, x := range full.Tensors[:len(full.Tensors)-1] {
		part.Add(x)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), part); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BENCH_MODEL_DIR", dir)
	t.Setenv("BENCH_DIR", t.TempDir())

	_, err = NewSetup()
	if err == nil {
		t.Fatal("NewSetup accepted a model directory that lacks a tensor")
	}
	for _, want := range []string{dir, missing} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
}
