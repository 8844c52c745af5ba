package safetensors_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"ckptbench/formats/safetensors"
	"ckptbench/internal/pyenv"
	"ckptbench/model"
	"ckptbench/tensor"
)

// pyDigest is one tensor as scripts/make_hf_fixture.py describes it.
type pyDigest struct {
	Name   string  `json:"name"`
	DType  string  `json:"dtype"`
	Shape  []int64 `json:"shape"`
	SHA256 string  `json:"sha256"`
}

type pyFile struct {
	Metadata map[string]string `json:"metadata"`
	Tensors  []pyDigest        `json:"tensors"`
}

// checkAgainstPython fails t unless sd has exactly the tensors of want,
// compared by name, with the same dtype, shape and bytes.
func checkAgainstPython(t *testing.T, file string, want []pyDigest, sd *tensor.StateDict) {
	t.Helper()
	if len(want) != len(sd.Tensors) {
		t.Errorf("%s: Go has %d tensors, Python %d", file, len(sd.Tensors), len(want))
	}
	for _, d := range want {
		tt := sd.Lookup(d.Name)
		if tt == nil {
			t.Errorf("%s: tensor %s, which Python has, is missing in Go", file, d.Name)
			continue
		}
		if tt.DType.String() != d.DType || !slices.Equal(tt.Shape, d.Shape) {
			t.Errorf("%s: tensor %s is %v %s in Go, %v %s in Python", file, d.Name, tt.Shape, tt.DType, d.Shape, d.DType)
			continue
		}
		sum := sha256.Sum256(tt.Data)
		if hex.EncodeToString(sum[:]) != d.SHA256 {
			t.Errorf("%s: tensor %s: bytes differ between Go and Python", file, d.Name)
		}
	}
}

// TestPythonInterop writes files that the safetensors Python package
// must read, and reads a file that it wrote, in one Python run.
func TestPythonInterop(t *testing.T) {
	dir := t.TempDir()
	goFiles := map[string]*tensor.StateDict{
		"go-tiny-bf16.safetensors": model.Synthetic(model.Tiny.Config, tensor.BFloat16, 5),
		"go-odd.safetensors":       oddTensors(),
	}
	for name, sd := range goFiles {
		f := safetensors.New(safetensors.Options{Metadata: map[string]string{"writer": "ckptbench"}})
		if err := f.Save(filepath.Join(dir, name), sd); err != nil {
			t.Fatal(err)
		}
	}

	out := pyenv.Run(t, "make_hf_fixture.py", "safetensors", dir)
	var result struct {
		Read    map[string]pyFile `json:"read"`
		Written map[string]pyFile `json:"written"`
	}
	if err := json.Unmarshal(out, &result); err != nil {
		t.Fatalf("make_hf_fixture.py output: %v\n%s", err, out)
	}

	for name, sd := range goFiles {
		got, ok := result.Read[name]
		if !ok {
			t.Errorf("Python did not read %s", name)
			continue
		}
		h, err := safetensors.ReadHeader(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		wantMeta := map[string]string{"format": "pt", "writer": "ckptbench", safetensors.ChecksumsKey: h.Metadata[safetensors.ChecksumsKey]}
		if !maps.Equal(got.Metadata, wantMeta) {
			t.Errorf("%s: Python reads metadata %v, want %v", name, got.Metadata, wantMeta)
		}
		checkAgainstPython(t, name, got.Tensors, sd)
	}

	for name, want := range result.Written {
		path := filepath.Join(dir, name)
		for _, f := range codecs {
			sd, err := f.Load(path)
			if err != nil {
				t.Fatalf("codec %s: %v", f.Codec(), err)
			}
			checkAgainstPython(t, name+" codec="+f.Codec(), want.Tensors, sd)
			sd.Close()
		}
		h, err := safetensors.ReadHeader(path)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(h.Metadata, want.Metadata) {
			t.Errorf("%s: Go reads metadata %v, Python wrote %v", name, h.Metadata, want.Metadata)
		}
	}
	if len(result.Written) == 0 {
		t.Error("Python wrote no file")
	}
}
