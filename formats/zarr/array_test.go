package zarr

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ckptbench/tensor"
)

// randomBytes returns n deterministic pseudo-random bytes.
func randomBytes(n int64, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 0))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func mustCodec(t *testing.T, name string) Codec {
	t.Helper()
	c, err := CodecFor(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestChunkKey(t *testing.T) {
	for _, tc := range []struct {
		index []int64
		sep   string
		want  string
	}{
		{nil, ".", "0"},
		{[]int64{0}, ".", "0"},
		{[]int64{3, 0, 12}, ".", "3.0.12"},
		{[]int64{3, 0, 12}, "/", "3/0/12"},
	} {
		if got := ChunkKey(tc.index, tc.sep); got != tc.want {
			t.Errorf("ChunkKey(%v, %q) = %q, want %q", tc.index, tc.sep, got, tc.want)
		}
	}
}

func TestChunkShape(t *testing.T) {
	for _, tc := range []struct {
		shape []int64
		size  int
		max   int64
		want  []int64
	}{
		{[]int64{32000, 3200}, 2, 1 << 30, []int64{32000, 3200}},
		{[]int64{32000, 3200}, 2, 64 << 20, []int64{10485, 3200}},
		{[]int64{10, 10}, 4, 100, []int64{2, 10}},
		{[]int64{10, 10}, 4, 30, []int64{1, 7}},
		{[]int64{3, 4, 5}, 2, 8, []int64{1, 1, 4}},
		{[]int64{3, 4, 5}, 2, 1, []int64{1, 1, 1}},
		{[]int64{}, 2, 1, []int64{}},
		{[]int64{0, 5}, 2, 1 << 20, []int64{1, 5}},
	} {
		got := ChunkShape(tc.shape, tc.size, tc.max)
		if !slices.Equal(got, tc.want) {
			t.Errorf("ChunkShape(%v, %d, %d) = %v, want %v", tc.shape, tc.size, tc.max, got, tc.want)
		}
	}
}

// TestArrayRoundTrip writes arrays with WriteArray and reads them back
// with ReadArray, with both separators and every writable codec. The
// chunk shapes cover the fast paths (one chunk, contiguous row blocks)
// and the strided path (chunks cut in several dimensions, edge chunks).
func TestArrayRoundTrip(t *testing.T) {
	shapes := []struct{ shape, chunks []int64 }{
		{[]int64{7, 5}, []int64{7, 5}},
		{[]int64{7, 5}, []int64{3, 5}},
		{[]int64{7, 5}, []int64{2, 2}},
		{[]int64{7, 5}, []int64{10, 10}},
		{[]int64{4, 5, 6}, []int64{3, 2, 4}},
		{[]int64{4, 5, 6}, []int64{1, 2, 6}},
		{[]int64{4, 5, 6}, []int64{1, 1, 4}},
		{[]int64{13}, []int64{4}},
		{[]int64{}, []int64{}},
		{[]int64{3, 0}, []int64{2, 1}},
	}
	// Each codec runs with one separator and one dtype, so the test
	// stays fast while every shape meets every codec.
	variants := []struct {
		codec, sep string
		dtype      tensor.DType
	}{
		{"raw", ".", tensor.Float16},
		{"gzip", "/", tensor.Float32},
		{"zstd", ".", tensor.Int8},
		{"zlib", "/", tensor.Float64},
	}
	for _, v := range variants {
		for i, s := range shapes {
			name := fmt.Sprintf("%s/%s/%v-in-%v", v.codec, v.dtype, s.shape, s.chunks)
			t.Run(name, func(t *testing.T) {
				c := mustCodec(t, v.codec)
				md, err := NewMetadata(v.dtype, s.shape, s.chunks, c)
				if err != nil {
					t.Fatal(err)
				}
				md.DimensionSeparator = v.sep
				src := randomBytes(product(s.shape)*int64(v.dtype.Size()), uint64(i))
				dir := filepath.Join(t.TempDir(), "a")
				if err := WriteArray(dir, md, c, src); err != nil {
					t.Fatal(err)
				}
				got, err := ReadMetadata(dir)
				if err != nil {
					t.Fatal(err)
				}
				dst := bytes.Repeat([]byte{0xAA}, len(src))
				if err := ReadArrayWith(dir, got, dst, ReadOptions{RequireChunks: true}); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(src, dst) {
					t.Fatalf("read back differs from what was written")
				}
			})
		}
	}
}

// TestEdgeChunkPadding checks that edge chunks are stored full size and
// padded with the fill value, which TensorStore and zarr-python require.
func TestEdgeChunkPadding(t *testing.T) {
	c := mustCodec(t, "raw")
	md, err := NewMetadata(tensor.Uint8, []int64{3, 3}, []int64{2, 2}, c)
	if err != nil {
		t.Fatal(err)
	}
	md.FillValue = []byte("9")
	dir := t.TempDir()
	if err := WriteArray(dir, md, c, []byte{1, 2, 3, 4, 5, 6, 7, 8, 0}); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string][]byte{
		"0.0": {1, 2, 4, 5},
		"0.1": {3, 9, 6, 9},
		"1.0": {7, 8, 9, 9},
		"1.1": {0, 9, 9, 9},
	} {
		got, err := os.ReadFile(filepath.Join(dir, key))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("chunk %s = %v, want %v", key, got, want)
		}
	}
}

func TestReadArrayMissingChunk(t *testing.T) {
	c := mustCodec(t, "gzip")
	md, err := NewMetadata(tensor.Float32, []int64{4, 2}, []int64{2, 2}, c)
	if err != nil {
		t.Fatal(err)
	}
	md.FillValue = []byte(`"NaN"`)
	dir := t.TempDir()
	src := randomBytes(32, 1)
	if err := WriteArray(dir, md, c, src); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "1.0")); err != nil {
		t.Fatal(err)
	}

	dst := make([]byte, 32)
	if err := ReadArray(dir, md, dst); err != nil {
		t.Fatalf("ReadArray with a missing chunk: %v, want the fill value", err)
	}
	if !bytes.Equal(dst[:16], src[:16]) {
		t.Errorf("stored chunk 0.0 read back wrong")
	}
	nan := []byte{0x00, 0x00, 0xc0, 0x7f}
	if want := bytes.Repeat(nan, 4); !bytes.Equal(dst[16:], want) {
		t.Errorf("missing chunk 1.0 read as %x, want NaN fill %x", dst[16:], want)
	}

	err = ReadArrayWith(dir, md, dst, ReadOptions{RequireChunks: true})
	if !errors.Is(err, ErrMissingChunk) {
		t.Fatalf("ReadArrayWith(RequireChunks) = %v, want ErrMissingChunk", err)
	}
	if !strings.Contains(err.Error(), filepath.Join(dir, "1.0")) {
		t.Errorf("error %q does not name the chunk file", err)
	}
}

func TestReadArrayWrongDestination(t *testing.T) {
	c := mustCodec(t, "raw")
	md, err := NewMetadata(tensor.Float16, []int64{4}, []int64{4}, c)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteArray(dir, md, c, make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	if err := ReadArray(dir, md, make([]byte, 6)); err == nil || !strings.Contains(err.Error(), "needs 8") {
		t.Errorf("ReadArray into 6 bytes = %v, want an error about the size", err)
	}
	if err := WriteArray(dir, md, c, make([]byte, 7)); err == nil {
		t.Errorf("WriteArray of 7 bytes for 8 succeeded")
	}
}

func TestReadArrayHugeChunks(t *testing.T) {
	md := Metadata{ZarrFormat: 2, Shape: []int64{3}, Chunks: []int64{1 << 40}, DType: "<f2", Order: "C"}
	if err := md.Validate(); err != nil {
		t.Fatal(err)
	}
	err := ReadArray(t.TempDir(), md, make([]byte, 6))
	if err == nil || !strings.Contains(err.Error(), "smaller chunks") {
		t.Errorf("ReadArray with 2 TiB chunks = %v, want an error", err)
	}
}

func TestReadArrayUnsupportedCodec(t *testing.T) {
	md := Metadata{ZarrFormat: 2, Shape: []int64{3}, Chunks: []int64{3}, DType: "<f2", Order: "C",
		Compressor: []byte(`{"id":"blosc","cname":"lz4","clevel":5,"shuffle":1}`)}
	dir := t.TempDir()
	err := ReadArray(dir, md, make([]byte, 6))
	if !errors.Is(err, ErrUnsupportedCodec) {
		t.Fatalf("ReadArray of blosc = %v, want ErrUnsupportedCodec", err)
	}
	want := "unsupported codec blosc in array " + dir + "; re-save with raw, gzip or zstd"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}
