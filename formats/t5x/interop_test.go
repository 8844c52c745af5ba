package t5x

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"ckptbench/internal/pyenv"
	"ckptbench/model"
	"ckptbench/tensor"
	"ckptbench/tensor/tensortest"
)

// tensorStoreArray is one line of `t5x_check.py read`.
type tensorStoreArray struct {
	Name       string  `json:"name"`
	DType      string  `json:"dtype"`
	Shape      []int64 `json:"shape"`
	Chunks     []int64 `json:"chunks"`
	Compressor string  `json:"compressor"`
	SHA256     string  `json:"sha256"`
}

func interopStateDict() *tensor.StateDict {
	sd := awkwardStateDict()
	for _, dtype := range []tensor.DType{tensor.Float16, tensor.BFloat16, tensor.Float32} {
		for _, x := range model.Synthetic(model.Tiny.Config, dtype, 5).Tensors {
			if x.Name == "model.embed_tokens.weight" || x.Name == "model.layers.0.mlp.down_proj.weight" {
				x.Name = dtype.String() + "." + x.Name
				sd.Add(x)
			}
		}
	}
	return sd
}

// TestTensorStoreReadsSave saves with every codec, with chunks small
// enough to cut columns, and checks that TensorStore reads every array
// back with the same dtype, shape and bytes, in index order.
func TestTensorStoreReadsSave(t *testing.T) {
	t.Parallel()
	pyenv.Python(t)
	want := interopStateDict()
	for _, codec := range []string{"gzip", "zstd", "raw"} {
		t.Run("codec="+codec, func(t *testing.T) {
			f, err := New(Options{Codec: codec, ChunkBytes: 4096})
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "checkpoint_1")
			if err := f.Save(dir, want); err != nil {
				t.Fatal(err)
			}
			out := pyenv.Run(t, "t5x_check.py", "read", dir)
			var got []tensorStoreArray
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				var a tensorStoreArray
				if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
					t.Fatalf("t5x_check.py read printed %q: %v", sc.Text(), err)
				}
				got = append(got, a)
			}
			if len(got) != len(want.Tensors) {
				t.Fatalf("TensorStore read %d arrays, want %d", len(got), len(want.Tensors))
			}
			multi := 0
			for i, w := range want.Tensors {
				g := got[i]
				sum := sha256.Sum256(w.Data)
				if g.Name != w.Name {
					t.Errorf("array %d: TensorStore read %q, want %q", i, g.Name, w.Name)
					continue
				}
				if g.DType != w.DType.String() {
					t.Errorf("%s: TensorStore dtype %s, want %s", w.Name, g.DType, w.DType)
				}
				if !slices.Equal(g.Shape, w.Shape) && !(len(g.Shape) == 0 && len(w.Shape) == 0) {
					t.Errorf("%s: TensorStore shape %v, want %v", w.Name, g.Shape, w.Shape)
				}
				if g.SHA256 != hex.EncodeToString(sum[:]) {
					t.Errorf("%s: TensorStore read different bytes (sha256 %s, want %x)", w.Name, g.SHA256, sum)
				}
				if g.Compressor != codec {
					t.Errorf("%s: compressor %s, want %s", w.Name, g.Compressor, codec)
				}
				if !slices.Equal(g.Chunks, g.Shape) {
					multi++
				}
			}
			if multi < 3 {
				t.Errorf("only %d arrays have several chunks; the test should cover chunked arrays", multi)
			}
		})
	}
}

// TestLoadTensorStoreWritten loads a checkpoint that TensorStore wrote
// the T5X way (scripts/t5x_check.py write): flat dotted array
// directories, gzip, the divisor chunk rule, a nested tree without
// "tensor_order", and fill value 0, so no chunk files for the all-zero
// tensor.
func TestLoadTensorStoreWritten(t *testing.T) {
	t.Parallel()
	pyenv.Python(t)
	want := interopStateDict()
	dir := t.TempDir()
	manifest, raw := writeManifest(t, dir, want)
	ckpt := filepath.Join(dir, "checkpoint_2")
	pyenv.Run(t, "t5x_check.py", "write", ckpt, manifest, raw, "--chunk-bytes", "4096")

	// TensorStore leaves out chunks equal to the fill value.
	if files, err := os.ReadDir(filepath.Join(ckpt, "zeros.weight")); err != nil || len(files) != 1 {
		t.Errorf("zeros.weight holds %d files (%v), want only .zarray", len(files), err)
	}
	f, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.Load(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	// A nested tree comes back grouped by prefix; tensor_order is absent.
	tensortest.Equal(t, groupByPrefix(want), got)
}

// groupByPrefix returns sd's tensors in the order of a nested parameter
// tree built from their dotted names in sd's order.
func groupByPrefix(sd *tensor.StateDict) *tensor.StateDict {
	root := &tree{}
	byName := map[string]*tensor.Tensor{}
	for _, x := range sd.Tensors {
		byName[x.Name] = x
		root.insert(splitName(x.Name), &Array{Name: x.Name})
	}
	out := &tensor.StateDict{}
	var walk func(*tree)
	walk = func(n *tree) {
		if n.leaf != nil {
			out.Add(byName[n.leaf.Name])
		}
		for _, c := range n.children {
			walk(c)
		}
	}
	walk(root)
	return out
}

// TestLoadPeerT5X loads a checkpoint written by the Python T5X peer,
// `scripts/peers.py save --format py-t5x`, from a safetensors handover
// file.
func TestLoadPeerT5X(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(filepath.Join(pyenv.Root(), "scripts", "peers.py")); err != nil {
		t.Skip("scripts/peers.py is not in this tree; TestLoadTensorStoreWritten covers a TensorStore-written checkpoint")
	}
	pyenv.Python(t)
	want := model.Synthetic(model.Tiny.Config, tensor.BFloat16, 9)
	dir := t.TempDir()
	handover := filepath.Join(dir, "model.safetensors")
	writeSafetensors(t, handover, want)
	ckpt := filepath.Join(dir, "checkpoint_0")
	pyenv.Run(t, "peers.py", "save", "--format", "py-t5x", "--handover", handover, "--out", ckpt)
	f, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.Load(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	tensortest.Equal(t, want, got)
}
