package safetensors_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ckptbench/formats/safetensors"
	"ckptbench/iox"
	"ckptbench/model"
	"ckptbench/tensor"
	"ckptbench/tensor/tensortest"
)

var codecs = []*safetensors.Format{safetensors.New(safetensors.Options{}), safetensors.New(safetensors.Options{Mmap: true})}

// oddTensors returns a state dict with every dtype and the shapes that
// trip up writers: a scalar, an empty tensor, odd byte counts that leave
// later tensors unaligned, and a name that JSON must escape.
func oddTensors() *tensor.StateDict {
	sd := &tensor.StateDict{}
	add := func(name string, d tensor.DType, shape ...int64) {
		t := tensor.New(name, d, shape...)
		for i := range t.Data {
			t.Data[i] = byte(i*7 + len(name))
		}
		sd.Add(t)
	}
	add("odd.u8", tensor.Uint8, 3)
	add("after.odd.f32", tensor.Float32, 2, 3)
	add("scalar", tensor.Float64)
	add("empty", tensor.Float16, 0, 4)
	add(`quote"and\backslash<&>`, tensor.Int8, 5)
	add("i32", tensor.Int32, 1, 1, 3)
	add("i64", tensor.Int64, 2)
	add("flags", tensor.Bool, 4)
	add("bf16", tensor.BFloat16, 7)
	return sd
}

func TestRoundTrip(t *testing.T) {
	cases := map[string]*tensor.StateDict{
		"tiny-float16":  model.Synthetic(model.Tiny.Config, tensor.Float16, 1),
		"tiny-bfloat16": model.Synthetic(model.Tiny.Config, tensor.BFloat16, 2),
		"tiny-float32":  model.Synthetic(model.Tiny.Config, tensor.Float32, 3),
		"odd":           oddTensors(),
		"no-tensors":    {},
	}
	for name, want := range cases {
		for _, f := range codecs {
			t.Run(name+"/codec="+f.Codec(), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "model.safetensors")
				if err := f.Save(path, want); err != nil {
					t.Fatal(err)
				}
				got, err := f.Load(path)
				if err != nil {
					t.Fatal(err)
				}
				defer got.Close()
				tensortest.Equal(t, want, got)
			})
		}
	}
}

func TestFileLayout(t *testing.T) {
	sd := oddTensors()
	path := filepath.Join(t.TempDir(), "model.safetensors")
	f := safetensors.New(safetensors.Options{Metadata: map[string]string{"step": "42"}})
	if err := f.Save(path, sd); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(b)
	if (8+n)%8 != 0 {
		t.Errorf("data starts at byte %d, not 8-byte aligned", 8+n)
	}
	h, err := safetensors.ReadHeader(path)
	if err != nil {
		t.Fatal(err)
	}
	if h.Metadata["format"] != "pt" || h.Metadata["step"] != "42" {
		t.Errorf("metadata %v, want format=pt and step=42", h.Metadata)
	}
	// Payloads follow the header in state-dict order with no padding.
	var data []byte
	for _, t := range sd.Tensors {
		data = append(data, t.Data...)
	}
	if !bytes.Equal(b[8+n:], data) {
		t.Error("the data section is not the payloads concatenated in order")
	}
}

func TestSaveReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	old := model.Synthetic(model.Tiny.Config, tensor.Float16, 1)
	f := safetensors.New(safetensors.Options{})
	if err := f.Save(path, old); err != nil {
		t.Fatal(err)
	}

	// A save that fails leaves the old file and no temporary file.
	bad := model.Synthetic(model.Tiny.Config, tensor.Float16, 2)
	bad.Tensors[3].Data = bad.Tensors[3].Data[:10]
	if err := f.Save(path, bad); err == nil {
		t.Fatal("Save accepted a tensor whose payload does not match its shape")
	} else if !strings.Contains(err.Error(), bad.Tensors[3].Name) {
		t.Errorf("error %q does not name tensor %s", err, bad.Tensors[3].Name)
	}
	badName := &tensor.StateDict{Tensors: []*tensor.Tensor{tensor.New("bad\xff", tensor.Float16, 1)}}
	if err := f.Save(path, badName); err == nil {
		t.Fatal("Save accepted a name that is not UTF-8")
	}
	got, err := f.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	tensortest.Equal(t, old, got)
	got.Close()

	// A save over an existing file replaces it.
	next := model.Synthetic(model.Tiny.Config, tensor.BFloat16, 3)
	if err := f.Save(path, next); err != nil {
		t.Fatal(err)
	}
	got, err = f.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	tensortest.Equal(t, next, got)
	got.Close()

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if iox.IsTemp(e.Name()) || e.Name() != "model.safetensors" {
			t.Errorf("leftover file %s after saves", e.Name())
		}
	}
}

func TestSaveRejectsDirectory(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "keep.txt")
	if err := os.WriteFile(marker, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := safetensors.New(safetensors.Options{}).Save(dir, oddTensors())
	if err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("error %v, want one saying the path is a directory", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the directory's contents were touched: %v", err)
	}
}

func TestMmapIsCopyOnWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.safetensors")
	want := oddTensors()
	if err := safetensors.WriteFile(path, want); err != nil {
		t.Fatal(err)
	}
	f := safetensors.New(safetensors.Options{Mmap: true})
	sd, err := f.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	sd.Tensors[0].Data[0] ^= 0xff
	if err := sd.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sd.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	got, err := f.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	tensortest.Equal(t, want, got)
}

func TestLoadTruncatedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := safetensors.WriteFile(path, model.Synthetic(model.Tiny.Config, tensor.Float16, 1)); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, info.Size()-100); err != nil {
		t.Fatal(err)
	}
	for _, f := range codecs {
		sd, err := f.Load(path)
		if err == nil {
			sd.Close()
			t.Fatalf("codec %s: no error for a truncated file", f.Codec())
		}
		for _, w := range []string{path, "lm_head.weight", "run past the end", "truncated"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("codec %s: error %q does not mention %q", f.Codec(), err, w)
			}
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.safetensors")
	for _, f := range codecs {
		if _, err := f.Load(path); err == nil || !strings.Contains(err.Error(), path) || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("codec %s: error %v, want a not-exist error naming %s", f.Codec(), err, path)
		}
	}
}

func TestFormatNames(t *testing.T) {
	if got := safetensors.New(safetensors.Options{}).Name(); got != "safetensors" {
		t.Errorf("Name() = %q", got)
	}
	if got := safetensors.New(safetensors.Options{}).Codec(); got != "read" {
		t.Errorf("Codec() = %q, want read", got)
	}
	if got := safetensors.New(safetensors.Options{Mmap: true}).Codec(); got != "mmap" {
		t.Errorf("Codec() = %q, want mmap", got)
	}
}

// TestNaNPayloadsSurvive checks that payload bytes are copied, never
// decoded: NaN payloads with custom bits come back bit for bit.
func TestNaNPayloadsSurvive(t *testing.T) {
	x := tensor.New("nan", tensor.Float32, 2)
	binary.LittleEndian.PutUint32(x.Data, math.Float32bits(float32(math.NaN()))|1)
	binary.LittleEndian.PutUint32(x.Data[4:], 0x7f800001) // a signaling NaN
	want := &tensor.StateDict{Tensors: []*tensor.Tensor{x}}
	path := filepath.Join(t.TempDir(), "nan.safetensors")
	if err := safetensors.WriteFile(path, want); err != nil {
		t.Fatal(err)
	}
	for _, f := range codecs {
		got, err := f.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		tensortest.Equal(t, want, got)
		got.Close()
	}
}
