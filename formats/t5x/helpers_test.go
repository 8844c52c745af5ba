package t5x

import (
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"ckptbench/tensor"
)

// awkwardStateDict returns tensors with the shapes that trip up chunked
// formats: prime sizes, dimensions of 1, a scalar, zero-size tensors,
// tensors smaller than any chunk, an all-zero tensor (which TensorStore
// stores without chunk files), integer and bool dtypes, and a name with
// bytes that need escaping in a path.
func awkwardStateDict() *tensor.StateDict {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(name string, dtype tensor.DType, shape ...int64) *tensor.Tensor {
		return randomTensor(rng, name, dtype, shape...)
	}
	sd := &tensor.StateDict{}
	sd.Add(
		random("prime.weight", tensor.Float16, 7, 13),
		random("prime.bias", tensor.BFloat16, 13),
		random("ones.weight", tensor.Float32, 1, 1, 5),
		random("row.weight", tensor.Float16, 1, 31),
		random("scalar", tensor.Float32),
		random("empty.weight", tensor.Float16, 0, 3),
		random("empty.bias", tensor.BFloat16, 4, 0),
		random("small.bias", tensor.BFloat16, 3),
		tensor.New("zeros.weight", tensor.Float16, 16, 16),
		random("wide.weight", tensor.Float32, 6, 1000),
		random("deep.weight", tensor.Float16, 2, 3, 5, 7),
		random("counts", tensor.Int32, 10),
		random("steps", tensor.Int64, 3),
		random("mask", tensor.Bool, 5),
		random("odd/name-x.w", tensor.Float16, 4, 4),
		random("layers.0.attn.qkv", tensor.BFloat16, 96, 32),
	)
	return sd
}

// randomTensor returns a tensor of random bytes from rng, with each
// bool element 0 or 1.
func randomTensor(rng *rand.Rand, name string, dtype tensor.DType, shape ...int64) *tensor.Tensor {
	t := tensor.New(name, dtype, shape...)
	for i := range t.Data {
		t.Data[i] = byte(rng.Uint32())
	}
	if dtype == tensor.Bool {
		for i := range t.Data {
			t.Data[i] &= 1
		}
	}
	return t
}

// manifestEntry describes one tensor in the raw file that
// scripts/t5x_check.py write reads.
type manifestEntry struct {
	Name   string  `json:"name"`
	DType  string  `json:"dtype"`
	Shape  []int64 `json:"shape"`
	Offset int64   `json:"offset"`
}

// writeManifest writes sd's bytes to dir/tensors.raw and their layout to
// dir/manifest.json, and returns the two paths.
func writeManifest(t *testing.T, dir string, sd *tensor.StateDict) (manifest, raw string) {
	t.Helper()
	var entries []manifestEntry
	var data []byte
	for _, x := range sd.Tensors {
		shape := x.Shape
		if shape == nil {
			shape = []int64{} // JSON [] for a scalar, not null
		}
		entries = append(entries, manifestEntry{Name: x.Name, DType: x.DType.String(), Shape: shape, Offset: int64(len(data))})
		data = append(data, x.Data...)
	}
	b, err := json.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	manifest, raw = filepath.Join(dir, "manifest.json"), filepath.Join(dir, "tensors.raw")
	if err := os.WriteFile(manifest, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(raw, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return manifest, raw
}

// writeSafetensors writes sd as a safetensors file, the handover format
// of scripts/peers.py, in state dict order.
func writeSafetensors(t *testing.T, path string, sd *tensor.StateDict) {
	t.Helper()
	names := map[tensor.DType]string{tensor.Float16: "F16", tensor.BFloat16: "BF16", tensor.Float32: "F32",
		tensor.Int32: "I32", tensor.Int64: "I64", tensor.Bool: "BOOL", tensor.Int8: "I8", tensor.Uint8: "U8", tensor.Float64: "F64"}
	// json.Marshal sorts map keys, which safetensors allows: the data
	// offsets, not the header order, give the saved order.
	header := map[string]any{}
	var off int64
	for _, x := range sd.Tensors {
		shape := x.Shape
		if shape == nil {
			shape = []int64{}
		}
		header[x.Name] = map[string]any{"dtype": names[x.DType], "shape": shape, "data_offsets": []int64{off, off + int64(len(x.Data))}}
		off += int64(len(x.Data))
	}
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	out = append(out, h...)
	for _, x := range sd.Tensors {
		out = append(out, x.Data...)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}
