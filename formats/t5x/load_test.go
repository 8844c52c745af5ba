package t5x

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/x448/float16"

	"ckptbench/model"
	"ckptbench/tensor"
	"ckptbench/tensor/tensortest"
)

// savedTiny saves the tiny model with opts and returns the format, the
// checkpoint path and the saved state dict.
func savedTiny(t *testing.T, opts Options) (*Format, string, *tensor.StateDict) {
	t.Helper()
	f, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	sd := model.Synthetic(model.Tiny.Config, tensor.Float16, 11)
	path := filepath.Join(t.TempDir(), "checkpoint_1")
	if err := f.Save(path, sd); err != nil {
		t.Fatal(err)
	}
	return f, path, sd
}

// editZarray rewrites one key of the .zarray of the array at dir.
func editZarray(t *testing.T, dir, key string, value any) {
	t.Helper()
	p := filepath.Join(dir, ".zarray")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	if err := json.Unmarshal(b, &md); err != nil {
		t.Fatal(err)
	}
	md[key] = value
	if b, err = json.Marshal(md); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// editIndex rewrites the checkpoint's index after edit changes it.
func editIndex(t *testing.T, path string, edit func(*Index)) {
	t.Helper()
	p := filepath.Join(path, IndexFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := ParseIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	edit(ix)
	if b, err = ix.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRejectsDamage(t *testing.T) {
	t.Parallel()
	const q = "model/layers/0/self_attn/q_proj/weight"
	tests := []struct {
		name   string
		codec  string
		damage func(t *testing.T, path string)
		want   []string // substrings of the error
	}{
		{"missing index", "raw", func(t *testing.T, path string) {
			os.Remove(filepath.Join(path, IndexFile))
		}, []string{"not a complete t5x checkpoint"}},
		{"corrupt index", "raw", func(t *testing.T, path string) {
			os.WriteFile(filepath.Join(path, IndexFile), []byte{0x93, 1}, 0o644)
		}, []string{IndexFile, "invalid t5x index"}},
		{"shape differs from index", "raw", func(t *testing.T, path string) {
			editZarray(t, filepath.Join(path, q), "shape", []int{64, 65})
		}, []string{"q_proj.weight", "has shape [64 65], but the index records [64 64]"}},
		{"dtype differs from index", "raw", func(t *testing.T, path string) {
			editZarray(t, filepath.Join(path, q), "dtype", "<f4")
		}, []string{"q_proj.weight", "stores float32, but the index records float16"}},
		{"missing array", "raw", func(t *testing.T, path string) {
			os.RemoveAll(filepath.Join(path, q))
		}, []string{"q_proj.weight", ".zarray"}},
		{"truncated raw chunk", "raw", func(t *testing.T, path string) {
			os.Truncate(filepath.Join(path, q, "0.0"), 100)
		}, []string{"q_proj.weight", "0.0", "is 100 bytes", "truncated"}},
		{"corrupt gzip chunk", "gzip", func(t *testing.T, path string) {
			os.WriteFile(filepath.Join(path, q, "0.0"), []byte("not gzip"), 0o644)
		}, []string{"q_proj.weight", "0.0", "gzip"}},
		{"truncated zstd chunk", "zstd", func(t *testing.T, path string) {
			p := filepath.Join(path, q, "0.0")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
		}, []string{"q_proj.weight", "0.0"}},
		{"missing chunk", "raw", func(t *testing.T, path string) {
			os.Remove(filepath.Join(path, q, "0.0"))
		}, []string{"q_proj.weight", "missing", "lost data"}},
		{"blosc", "raw", func(t *testing.T, path string) {
			editZarray(t, filepath.Join(path, q), "compressor", map[string]any{"id": "blosc", "cname": "lz4"})
		}, []string{"q_proj.weight", "blosc", "re-save"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, path, _ := savedTiny(t, Options{Codec: tt.codec})
			tt.damage(t, path)
			sd, err := f.Load(path)
			if err == nil {
				sd.Close()
				t.Fatalf("Load succeeded; want an error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestLoadFillsMissingChunks removes a chunk from a checkpoint whose
// index does not claim every chunk was stored: zarr reads it as the
// fill value.
func TestLoadFillsMissingChunks(t *testing.T) {
	f, path, want := savedTiny(t, Options{Codec: "gzip", ChunkBytes: 1024})
	editIndex(t, path, func(ix *Index) { ix.EveryChunkStored = false })
	dir := filepath.Join(path, "model/layers/1/mlp/down_proj/weight")
	if err := os.Remove(filepath.Join(dir, "0.1")); err != nil {
		t.Fatal(err)
	}
	editZarray(t, dir, "fill_value", 1.5)

	// Chunk 0.1 of down_proj [64 172] with chunks [43 43]... derive from
	// the .zarray rather than assume.
	md := readZarray(t, dir)
	w := want.Lookup("model.layers.1.mlp.down_proj.weight")
	onePointFive := float16.Fromfloat32(1.5).Bits()
	for r := int64(0); r < md.Chunks[0]; r++ {
		for c := md.Chunks[1]; c < 2*md.Chunks[1]; c++ {
			binary.LittleEndian.PutUint16(w.Data[(r*w.Shape[1]+c)*2:], onePointFive)
		}
	}
	got, err := f.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	tensortest.Equal(t, want, got)
}

type zarrayShape struct {
	Shape  []int64 `json:"shape"`
	Chunks []int64 `json:"chunks"`
}

func readZarray(t *testing.T, dir string) zarrayShape {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, ".zarray"))
	if err != nil {
		t.Fatal(err)
	}
	var md zarrayShape
	if err := json.Unmarshal(b, &md); err != nil {
		t.Fatal(err)
	}
	if len(md.Chunks) != 2 || md.Chunks[1] >= md.Shape[1] {
		t.Fatalf("down_proj chunks %v of shape %v do not cut columns; the test needs a chunk 0.1", md.Chunks, md.Shape)
	}
	return md
}

func TestLoadRestoreDType(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ from, to tensor.DType }{
		{tensor.Float16, tensor.Float32},
		{tensor.BFloat16, tensor.Float32},
		{tensor.Float32, tensor.BFloat16},
		{tensor.Float32, tensor.Float16},
		{tensor.BFloat16, tensor.Float16},
	} {
		t.Run(c.from.String()+"-to-"+c.to.String(), func(t *testing.T) {
			sd := model.Synthetic(model.Tiny.Config, c.from, 3)
			sd.Add(tensor.New("counts", tensor.Int32, 4)) // not a float: kept
			path := filepath.Join(t.TempDir(), "checkpoint_1")
			saver, _ := New(Options{ChunkBytes: 8192})
			if err := saver.Save(path, sd); err != nil {
				t.Fatal(err)
			}
			loader, _ := New(Options{RestoreDType: c.to})
			got, err := loader.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			want := &tensor.StateDict{}
			for _, x := range sd.Tensors {
				if x.DType == tensor.Int32 {
					want.Add(x)
					continue
				}
				y := tensor.New(x.Name, c.to, x.Shape...)
				for i := int64(0); i < x.NumElements(); i++ {
					v := elementAsFloat64(x, i)
					putFloat64(y, i, v)
				}
				want.Add(y)
			}
			tensortest.Equal(t, want, got)
		})
	}
}

// elementAsFloat64 and putFloat64 convert one element independently of
// cast.go, through x448/float16 and math.
func elementAsFloat64(x *tensor.Tensor, i int64) float64 {
	switch x.DType {
	case tensor.Float16:
		return float64(float16.Frombits(binary.LittleEndian.Uint16(x.Data[2*i:])).Float32())
	case tensor.BFloat16:
		return float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(x.Data[2*i:])) << 16))
	default:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(x.Data[4*i:])))
	}
}

func putFloat64(y *tensor.Tensor, i int64, v float64) {
	switch y.DType {
	case tensor.Float16:
		binary.LittleEndian.PutUint16(y.Data[2*i:], float16.Fromfloat32(float32(v)).Bits())
	case tensor.BFloat16:
		// Round to nearest even by way of float32 bits.
		b := math.Float32bits(float32(v))
		binary.LittleEndian.PutUint16(y.Data[2*i:], uint16((b+0x7fff+(b>>16)&1)>>16))
	default:
		binary.LittleEndian.PutUint32(y.Data[4*i:], math.Float32bits(float32(v)))
	}
}

// TestByteBudget saves and loads with a budget of a few chunks and checks
// that the bytes in flight never exceeded it, and that a chunk larger
// than the whole budget still goes through, alone.
func TestByteBudget(t *testing.T) {
	for _, codec := range []string{"raw", "gzip"} {
		for _, c := range []struct {
			name          string
			budget, chunk int64
			// The peak must lie in [low, high]: at least one chunk, at
			// most the budget or, for oversized chunks, one chunk with
			// its buffers.
			low, high int64
		}{
			{"budget above chunks", 64 << 10, 8 << 10, 8 << 10, 64 << 10},
			{"chunks above budget", 4 << 10, 40 << 10, 40 << 10, 2*(40<<10) + 3*blockSize},
		} {
			t.Run(codec+"/"+c.name, func(t *testing.T) {
				var peak atomic.Int64
				f, err := New(Options{Codec: codec, ByteBudget: c.budget, ChunkBytes: c.chunk, IOConcurrency: 8, testPeakBytes: &peak})
				if err != nil {
					t.Fatal(err)
				}
				want := model.Synthetic(model.Tiny.Config, tensor.Float32, 1)
				path := filepath.Join(t.TempDir(), "checkpoint_1")
				if err := f.Save(path, want); err != nil {
					t.Fatal(err)
				}
				if p := peak.Load(); p < c.low || p > c.high {
					t.Errorf("save had %d bytes in flight at its peak, want between %d and %d", p, c.low, c.high)
				}
				got, err := f.Load(path)
				if err != nil {
					t.Fatal(err)
				}
				defer got.Close()
				tensortest.Equal(t, want, got)
				if p := peak.Load(); p < c.low || p > c.high {
					t.Errorf("load had %d bytes in flight at its peak, want between %d and %d", p, c.low, c.high)
				}
			})
		}
	}
}

// TestLoadMixedChunksSmallBudget loads chunks that are read in place
// (whole rows) between chunks that need a buffer (column blocks), with
// one I/O goroutine and a budget below two chunks: a load must not wait
// on itself for the budget.
func TestLoadMixedChunksSmallBudget(t *testing.T) {
	want := &tensor.StateDict{}
	for i := range 4 {
		blocks := tensor.New("blocks"+strconv.Itoa(i), tensor.Float32, 64, 64)
		rows := tensor.New("rows"+strconv.Itoa(i), tensor.Float32, 2048)
		copy(blocks.Data, randomBytes(len(blocks.Data)))
		copy(rows.Data, randomBytes(len(rows.Data)))
		want.Add(blocks, rows)
	}
	f, err := New(Options{Codec: "raw", ChunkBytes: 4096, ByteBudget: 6000, IOConcurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "checkpoint_1")
	type result struct {
		sd  *tensor.StateDict
		err error
	}
	done := make(chan result, 1)
	go func() {
		if err := f.Save(path, want); err != nil {
			done <- result{err: err}
			return
		}
		sd, err := f.Load(path)
		done <- result{sd, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		defer r.sd.Close()
		tensortest.Equal(t, want, r.sd)
	case <-time.After(60 * time.Second):
		t.Fatal("save and load did not finish in 60 s; the pipeline is stuck waiting for its own budget")
	}
}
