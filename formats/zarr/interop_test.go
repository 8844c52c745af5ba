package zarr

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ckptbench/internal/pyenv"
	"ckptbench/model"
	"ckptbench/tensor"
)

// tsArray is one line of `ts_interop.py read`: an array as TensorStore
// read it.
type tsArray struct {
	Path  string  `json:"path"`
	Shape []int64 `json:"shape"`
	DType string  `json:"dtype"`
	Data  []byte  `json:"data"` // base64 in JSON
	Error string  `json:"error"`
}

// readWithTensorStore opens every array directory in dirs with Python
// TensorStore, in one process, and returns what it read by path.
func readWithTensorStore(t *testing.T, dirs []string) map[string]tsArray {
	t.Helper()
	out := pyenv.Run(t, "ts_interop.py", append([]string{"read"}, dirs...)...)
	got := map[string]tsArray{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var a tsArray
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("ts_interop.py read: %v in %.200q", err, sc.Text())
		}
		got[a.Path] = a
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestTensorStoreReadsGoArrays checks that Python TensorStore reads every
// array Go writes with the same shape, dtype and bytes. It saves part of
// the tiny model in float16, bfloat16 and float32 with raw, gzip and
// zstd. Further arrays cover the rest of the writer: "/" separators,
// chunks cut in several dimensions, zlib, integer, scalar and empty arrays.
func TestTensorStoreReadsGoArrays(t *testing.T) {
	root := t.TempDir()
	want := map[string]*tensor.Tensor{} // array directory -> tensor
	for _, codec := range []string{"raw", "gzip", "zstd"} {
		for _, dtype := range []tensor.DType{tensor.Float16, tensor.BFloat16, tensor.Float32} {
			// gzip runs with a chunk limit, so its arrays have edge chunks.
			opts := Options{Codec: codec}
			if codec == "gzip" {
				opts.MaxChunkBytes = 3000
			}
			f := newFormat(t, opts)
			// The embedding, a layer's first projections and a norm cover
			// every tensor shape kind; the full model only adds fsyncs.
			sd := model.Synthetic(model.Tiny.Config, dtype, 3)
			sd.Tensors = append(sd.Tensors[:4], sd.Lookup("model.norm.weight"))
			path := filepath.Join(root, codec+"-"+dtype.String())
			if err := f.Save(path, sd); err != nil {
				t.Fatal(err)
			}
			for _, tn := range sd.Tensors {
				rel, _ := ArrayPath(tn.Name)
				want[filepath.Join(path, filepath.FromSlash(rel))] = tn
			}
		}
	}
	extras := []struct {
		name          string
		dtype         tensor.DType
		shape, chunks []int64
		codec, sep    string
	}{
		{"f32-3d-slash", tensor.Float32, []int64{4, 5, 6}, []int64{3, 2, 4}, "zstd", "/"},
		{"bf16-zlib-slash", tensor.BFloat16, []int64{9, 7}, []int64{4, 7}, "zlib", "/"},
		{"i64-raw", tensor.Int64, []int64{5, 3}, []int64{2, 2}, "raw", "."},
		{"u8-gzip", tensor.Uint8, []int64{17}, []int64{5}, "gzip", "."},
		{"bool-raw", tensor.Bool, []int64{3, 3}, []int64{2, 3}, "raw", "."},
		{"f16-scalar", tensor.Float16, []int64{}, []int64{}, "gzip", "."},
		{"u8-empty", tensor.Uint8, []int64{0, 4}, []int64{1, 4}, "raw", "."},
	}
	for i, x := range extras {
		c := mustCodec(t, x.codec)
		md, err := NewMetadata(x.dtype, x.shape, x.chunks, c)
		if err != nil {
			t.Fatal(err)
		}
		md.DimensionSeparator = x.sep
		tn := &tensor.Tensor{Meta: tensor.Meta{Name: x.name, DType: x.dtype, Shape: x.shape}}
		tn.Data = randomBytes(product(x.shape)*int64(x.dtype.Size()), uint64(i))
		if x.dtype == tensor.Bool {
			for j := range tn.Data {
				tn.Data[j] &= 1
			}
		}
		dir := filepath.Join(root, "extra", x.name)
		if err := WriteArray(dir, md, c, tn.Data); err != nil {
			t.Fatal(err)
		}
		want[dir] = tn
	}

	dirs := make([]string, 0, len(want))
	for d := range want {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	got := readWithTensorStore(t, dirs)
	for _, dir := range dirs {
		w, g := want[dir], got[dir]
		rel, _ := filepath.Rel(root, dir)
		switch {
		case g.Path == "":
			t.Errorf("%s: TensorStore returned nothing", rel)
		case g.Error != "":
			t.Errorf("%s: TensorStore failed: %s", rel, g.Error)
		case g.DType != w.DType.String():
			t.Errorf("%s: TensorStore dtype %s, want %s", rel, g.DType, w.DType)
		case !slices.Equal(g.Shape, w.Shape) && !(len(g.Shape) == 0 && len(w.Shape) == 0):
			t.Errorf("%s: TensorStore shape %v, want %v", rel, g.Shape, w.Shape)
		case !bytes.Equal(g.Data, w.Data):
			t.Errorf("%s: TensorStore read different bytes (%s)", rel, firstDiff(w.Data, g.Data))
		}
	}
}

// tsCase is one array that `ts_interop.py write-cases` wrote.
type tsCase struct {
	Name       string  `json:"name"`
	Path       string  `json:"path"`
	Compressor string  `json:"compressor"`
	DType      string  `json:"dtype"`
	Shape      []int64 `json:"shape"`
	Data       []byte  `json:"data"`
}

// TestGoReadsTensorStoreArrays reads arrays that Python TensorStore wrote
// with each compressor it offers, with edge chunks, missing chunks and
// "/" separators, and checks the bytes, or for blosc the
// unsupported-codec error.
func TestGoReadsTensorStoreArrays(t *testing.T) {
	out := pyenv.Run(t, "ts_interop.py", "write-cases", t.TempDir())
	var cases []tsCase
	if err := json.Unmarshal(out, &cases); err != nil {
		t.Fatalf("ts_interop.py write-cases: %v", err)
	}
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.Compressor] = true
		if strings.Contains(c.Name, "missing") {
			seen["missing"] = true
		}
		if strings.Contains(c.Name, "slash") {
			seen["slash"] = true
		}
	}
	for _, k := range []string{"raw", "gzip", "zlib", "bz2", "zstd", "blosc", "missing", "slash"} {
		if !seen[k] {
			t.Errorf("write-cases wrote no %s case", k)
		}
	}

	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			md, err := ReadMetadata(c.Path)
			if err != nil {
				t.Fatal(err)
			}
			if md.DType != c.DType || !slices.Equal(md.Shape, c.Shape) {
				t.Errorf("metadata dtype %s shape %v, want %s %v", md.DType, md.Shape, c.DType, c.Shape)
			}
			dst := bytes.Repeat([]byte{0xAA}, len(c.Data))
			err = ReadArray(c.Path, md, dst)
			if c.Compressor == "blosc" {
				want := "unsupported codec blosc in array " + c.Path + "; re-save with raw, gzip or zstd"
				if !errors.Is(err, ErrUnsupportedCodec) || !strings.Contains(err.Error(), want) {
					t.Fatalf("ReadArray = %v, want an error containing %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(dst, c.Data) {
				t.Fatalf("Go read different bytes than TensorStore wrote (%s)", firstDiff(c.Data, dst))
			}
			err = ReadArrayWith(c.Path, md, dst, ReadOptions{RequireChunks: true})
			if strings.Contains(c.Name, "missing") != errors.Is(err, ErrMissingChunk) {
				t.Errorf("ReadArrayWith(RequireChunks) = %v", err)
			}
		})
	}
}

func firstDiff(want, got []byte) string {
	if len(want) != len(got) {
		return fmt.Sprintf("got %d bytes, want %d", len(got), len(want))
	}
	for i := range want {
		if want[i] != got[i] {
			return fmt.Sprintf("first difference at byte %d of %d", i, len(want))
		}
	}
	return "no difference"
}
