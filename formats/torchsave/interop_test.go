//go:build torch

package torchsave

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ckptbench/internal/pyenv"
	"ckptbench/model"
	"ckptbench/tensor"
)

// pyTensor is one line of scripts/torchsave_check.py's output.
type pyTensor struct {
	Name       string  `json:"name"`
	DType      string  `json:"dtype"`
	Shape      []int64 `json:"shape"`
	SHA256     string  `json:"sha256"`
	Contiguous bool    `json:"contiguous"`
}

// pyTorchLoad is the line in which the script's read command reports what
// torch.load returned.
type pyTorchLoad struct {
	Type    string `json:"torch_load_type"`
	Warning string `json:"torch_load_warning"`
}

// pyReport is the script's output for one file.
type pyReport struct {
	Tensors   []pyTensor
	TorchLoad *pyTorchLoad
}

// parseReports decodes the script's JSON lines, grouped by their "file".
func parseReports(t *testing.T, out []byte) map[string]*pyReport {
	t.Helper()
	reports := map[string]*pyReport{}
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		line := s.Bytes()
		var head struct {
			File      string `json:"file"`
			TorchLoad string `json:"torch_load_type"`
		}
		if err := json.Unmarshal(line, &head); err != nil {
			t.Fatalf("decode %q: %v", line, err)
		}
		r := reports[head.File]
		if r == nil {
			r = &pyReport{}
			reports[head.File] = r
		}
		if head.TorchLoad != "" {
			r.TorchLoad = &pyTorchLoad{}
			if err := json.Unmarshal(line, r.TorchLoad); err != nil {
				t.Fatalf("decode %q: %v", line, err)
			}
			continue
		}
		var p pyTensor
		if err := json.Unmarshal(line, &p); err != nil {
			t.Fatalf("decode %q: %v", line, err)
		}
		r.Tensors = append(r.Tensors, p)
	}
	return reports
}

// describe returns what the script prints for x.
func describe(x *tensor.Tensor) pyTensor {
	sum := sha256.Sum256(x.Data)
	shape := x.Shape
	if shape == nil {
		shape = []int64{}
	}
	return pyTensor{Name: x.Name, DType: x.DType.String(), Shape: shape, SHA256: hex.EncodeToString(sum[:]), Contiguous: true}
}

// compareTensors fails t at the first tensor where got differs from want.
func compareTensors(t *testing.T, want, got []pyTensor) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d tensors, want %d", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if g.Name != w.Name || g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) || g.SHA256 != w.SHA256 {
			t.Fatalf("tensor #%d: got %+v, want %+v", i, g, w)
		}
	}
}

// TestPythonInterop checks the package comment's claims against
// llama-venv's torch, in one Python process because importing torch takes
// seconds: torch.jit.load reads what Save writes, torch.load does not
// return a state dict for it, Load reads what torch.jit.save writes, and
// Load rejects what torch.save writes.
func TestPythonInterop(t *testing.T) {
	dir := t.TempDir()
	goFile := filepath.Join(dir, "go.pt")
	jitFile := filepath.Join(dir, "jit.pt")
	pickleFile := filepath.Join(dir, "pickle.pt")

	sd := model.Synthetic(model.Tiny.Config, tensor.BFloat16, 5)
	scalar := tensor.New("extra.scalar", tensor.Float32)
	binary.LittleEndian.PutUint32(scalar.Data, math.Float32bits(3.25))
	sd.Add(scalar, tensor.New("extra.empty", tensor.Float16, 0, 8))
	if err := New().Save(goFile, sd); err != nil {
		t.Fatalf("Save: %v", err)
	}
	reports := parseReports(t, pyenv.Run(t, "torchsave_check.py",
		"read", goFile, "write", jitFile, "pickle", pickleFile))

	t.Run("jit.load reads Save", func(t *testing.T) {
		r := reports[goFile]
		if r == nil {
			t.Fatalf("the script printed nothing for %s", goFile)
		}
		want := make([]pyTensor, len(sd.Tensors))
		for i, x := range sd.Tensors {
			want[i] = describe(x)
		}
		compareTensors(t, want, r.Tensors)
	})

	t.Run("torch.load returns a module", func(t *testing.T) {
		r := reports[goFile]
		if r == nil || r.TorchLoad == nil {
			t.Fatalf("the script printed no torch.load report for %s", goFile)
		}
		if r.TorchLoad.Type != "RecursiveScriptModule" {
			t.Errorf("torch.load returned a %s, want a RecursiveScriptModule", r.TorchLoad.Type)
		}
		if !strings.Contains(r.TorchLoad.Warning, "TorchScript") {
			t.Errorf("torch.load warned %q, want a warning about a TorchScript archive", r.TorchLoad.Warning)
		}
	})

	t.Run("Load reads jit.save", func(t *testing.T) {
		r := reports[jitFile]
		if r == nil {
			t.Fatalf("the script printed nothing for %s", jitFile)
		}
		if !slices.ContainsFunc(r.Tensors, func(p pyTensor) bool { return !p.Contiguous }) {
			t.Fatal("the script saved no non-contiguous tensor, so the contiguous copy in Load goes untested")
		}
		got, err := New().Load(jitFile)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		defer got.Close()
		described := make([]pyTensor, len(got.Tensors))
		for i, x := range got.Tensors {
			described[i] = describe(x)
		}
		compareTensors(t, r.Tensors, described)
		checkVerifiesJitSave(t, jitFile)
	})

	t.Run("Load rejects torch.save", func(t *testing.T) {
		got, err := New().Load(pickleFile)
		if err == nil {
			got.Close()
			t.Fatal("Load of a torch.save pickle succeeded, want an error")
		}
		if !strings.Contains(err.Error(), pickleFile) {
			t.Errorf("error does not name the file: %v", err)
		}
		if !strings.Contains(err.Error(), "torch.save") {
			t.Errorf("error does not say that torch.save files are not read: %v", err)
		}
	})
}
