package t5x

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"ckptbench/tensor"
)

// naiveCopyBox copies a box element by element, the definition copyBox
// must match.
func naiveCopyBox(dst []byte, dstShape, dstOrigin []int64, src []byte, srcShape, srcOrigin, extent []int64, size int64) {
	n := product(extent)
	idx := make([]int64, len(extent))
	for i := int64(0); i < n; i++ {
		rest := i
		for d := len(extent) - 1; d >= 0; d-- {
			idx[d] = rest % extent[d]
			rest /= extent[d]
		}
		var do, so int64
		for d := range extent {
			do = do*dstShape[d] + dstOrigin[d] + idx[d]
			so = so*srcShape[d] + srcOrigin[d] + idx[d]
		}
		copy(dst[do*size:(do+1)*size], src[so*size:(so+1)*size])
	}
}

func TestCopyBox(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 5))
	for trial := range 2000 {
		rank := rng.IntN(5)
		size := []int64{1, 2, 4}[rng.IntN(3)]
		extent := make([]int64, rank)
		srcShape := make([]int64, rank)
		dstShape := make([]int64, rank)
		srcOrigin := make([]int64, rank)
		dstOrigin := make([]int64, rank)
		for d := range rank {
			extent[d] = int64(rng.IntN(4))
			if rng.IntN(8) > 0 {
				extent[d]++ // mostly non-empty
			}
			srcOrigin[d] = int64(rng.IntN(3))
			dstOrigin[d] = int64(rng.IntN(3))
			// Sometimes the box spans a whole dimension of one array, so
			// trailing dimensions merge into longer runs.
			srcShape[d] = srcOrigin[d] + extent[d] + int64(rng.IntN(2))
			dstShape[d] = dstOrigin[d] + extent[d] + int64(rng.IntN(2))
		}
		src := randomBytes(int(product(srcShape) * size))
		got := make([]byte, product(dstShape)*size)
		want := make([]byte, len(got))
		copyBox(got, dstShape, dstOrigin, size, src, srcShape, srcOrigin, size, extent, copyBytes)
		naiveCopyBox(want, dstShape, dstOrigin, src, srcShape, srcOrigin, extent, size)
		if !bytes.Equal(got, want) {
			t.Fatalf("trial %d: copyBox(dst %v at %v, src %v at %v, extent %v, size %d) differs from an element-wise copy",
				trial, dstShape, dstOrigin, srcShape, srcOrigin, extent, size)
		}
	}
}

// TestCopyBoxConverts checks that copyBox hands matching runs to a
// converting copyRun when the element sizes differ.
func TestCopyBoxConverts(t *testing.T) {
	// float16 1.0 (0x3c00) and 2.0 (0x4000) to float32.
	src := []byte{0x00, 0x3c, 0x00, 0x40, 0x00, 0x3c, 0x00, 0x40}
	dst := make([]byte, 3*2*4)
	copyBox(dst, []int64{3, 2}, []int64{1, 0}, 4, src, []int64{2, 2}, []int64{0, 0}, 2, []int64{2, 2}, converter(tensor.Float16, tensor.Float32))
	// Rows 1 and 2 of dst hold 1, 2, 1, 2 as float32; row 0 stays zero.
	want := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40}
	if !bytes.Equal(dst, want) {
		t.Fatalf("converted box = %x, want %x", dst, want)
	}
}

func TestContiguousOffset(t *testing.T) {
	tests := []struct {
		shape, origin, extent []int64
		offset                int64
		ok                    bool
	}{
		{[]int64{4, 6}, []int64{2, 0}, []int64{2, 6}, 12, true}, // whole rows
		{[]int64{4, 6}, []int64{1, 2}, []int64{1, 3}, 8, true},  // part of one row
		{[]int64{4, 6}, []int64{0, 3}, []int64{2, 3}, 3, false}, // a column block
		{[]int64{2, 3, 4}, []int64{1, 1, 0}, []int64{1, 2, 4}, 16, true},
		{[]int64{2, 3, 4}, []int64{0, 1, 0}, []int64{2, 2, 4}, 4, false},
		{[]int64{}, []int64{}, []int64{}, 0, true}, // scalar
	}
	for _, tt := range tests {
		off, ok := contiguousOffset(tt.shape, tt.origin, tt.extent)
		if ok != tt.ok || (ok && off != tt.offset) {
			t.Errorf("contiguousOffset(%v, %v, %v) = %d, %v; want %d, %v", tt.shape, tt.origin, tt.extent, off, ok, tt.offset, tt.ok)
		}
	}
}

func TestGridRegions(t *testing.T) {
	g := newGrid([]int64{5, 4}, []int64{2, 3})
	if n := g.numChunks(); n != 6 {
		t.Fatalf("numChunks = %d, want 6", n)
	}
	// The last chunk is an edge chunk in both dimensions.
	idx := g.chunkIndex(5)
	origin, extent := g.region(idx)
	if !slices.Equal(idx, []int64{2, 1}) || !slices.Equal(origin, []int64{4, 3}) || !slices.Equal(extent, []int64{1, 1}) {
		t.Errorf("chunk 5: index %v origin %v extent %v; want [2 1], [4 3], [1 1]", idx, origin, extent)
	}
	if n := newGrid([]int64{0, 4}, []int64{1, 4}).numChunks(); n != 0 {
		t.Errorf("zero-size array has %d chunks, want 0", n)
	}
	if n := newGrid([]int64{}, []int64{}).numChunks(); n != 1 {
		t.Errorf("scalar has %d chunks, want 1", n)
	}
}
