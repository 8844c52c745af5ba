package zarr

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"ckptbench/tensor"
)

// FuzzParseMetadata feeds .zarray documents to ParseMetadata, seeded with
// testdata/zarr/*.zarray (files TensorStore wrote and damaged ones). Any
// document it accepts must survive a JSON round trip. When its array is
// small, the array must also read back through the chunk grid, and after
// a write when its codec can encode, so odd shapes and chunk lengths
// reach the chunk arithmetic.
func FuzzParseMetadata(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("..", "..", "testdata", "zarr", "*.zarray"))
	if err != nil {
		f.Fatal(err)
	}
	if len(seeds) == 0 {
		f.Fatal("no seeds in testdata/zarr")
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// Compare JSON values, not their spelling: an absent key equals null,
	// and json.Marshal escapes characters such as '&'.
	semantic := cmp.Transformer("semantic", func(b json.RawMessage) string {
		if len(b) == 0 {
			return "null"
		}
		var v any
		if json.Unmarshal(b, &v) != nil {
			return string(b)
		}
		out, _ := json.Marshal(v)
		return string(out)
	})
	f.Fuzz(func(t *testing.T, doc []byte) {
		md, err := ParseMetadata(doc)
		if err != nil {
			if !errors.Is(err, ErrMetadata) {
				t.Fatalf("error %v does not wrap ErrMetadata", err)
			}
			return
		}
		b, err := json.Marshal(md)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseMetadata(b)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", b, err)
		}
		if d := cmp.Diff(md, again, semantic); d != "" {
			t.Fatalf("metadata changed in a JSON round trip (-first +second):\n%s", d)
		}
		dtype, err := md.TensorDType()
		if err != nil {
			t.Fatal(err)
		}
		fill, err := md.FillBytes()
		if err != nil || len(fill) != dtype.Size() {
			t.Fatalf("FillBytes = %x, %v", fill, err)
		}
		checkSmallArray(t, md, dtype, fill)
	})
}

// checkSmallArray reads md's array from an empty directory (every chunk
// missing, so the fill value) and, when its codec can encode, writes
// random data and reads it back. Large arrays are skipped to keep each
// input fast.
func checkSmallArray(t *testing.T, md Metadata, dtype tensor.DType, fill []byte) {
	size := (tensor.Meta{DType: dtype, Shape: md.Shape}).NumBytes()
	g, err := newGrid(md)
	if err != nil {
		t.Fatal(err)
	}
	nchunks := int64(1)
	for _, n := range g.counts {
		nchunks *= n
	}
	if size > 1<<16 || nchunks > 64 || g.chunkBytes > 1<<20 {
		return
	}
	dir := t.TempDir()
	dst := make([]byte, size)
	err = ReadArray(dir, md, dst)
	if errors.Is(err, ErrUnsupportedCodec) {
		return
	}
	if err != nil {
		t.Fatalf("ReadArray of an empty array: %v", err)
	}
	want := make([]byte, size)
	fillBytes(want, fill)
	if !bytes.Equal(dst, want) {
		t.Fatal("an array with no chunks did not read as the fill value")
	}

	c, err := CodecFromMetadata(md.Compressor)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID() == "bz2" {
		return
	}
	src := randomBytes(size, uint64(size))
	if err := WriteArray(filepath.Join(dir, "a"), md, c, src); err != nil {
		t.Fatalf("WriteArray: %v", err)
	}
	if err := ReadArrayWith(filepath.Join(dir, "a"), md, dst, ReadOptions{RequireChunks: true}); err != nil {
		t.Fatalf("ReadArray: %v", err)
	}
	if !bytes.Equal(dst, src) {
		t.Fatalf("%v in %v chunks: read back differs (%s)", md.Shape, md.Chunks, firstDiff(src, dst))
	}
}
