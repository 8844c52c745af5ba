package t5x

// grid is the chunk grid of one zarr array: how its shape is cut into
// chunks of a fixed shape, edge chunks included.
type grid struct {
	shape  []int64
	chunks []int64
	counts []int64 // number of chunks along each dimension
}

func newGrid(shape, chunks []int64) grid {
	counts := make([]int64, len(shape))
	for i := range shape {
		counts[i] = (shape[i] + chunks[i] - 1) / chunks[i]
	}
	return grid{shape: shape, chunks: chunks, counts: counts}
}

// numChunks returns the number of chunks: 0 for an array with a zero
// dimension, 1 for a scalar.
func (g grid) numChunks() int64 {
	n := int64(1)
	for _, c := range g.counts {
		n *= c
	}
	return n
}

// chunkIndex returns the grid coordinates of the chunk with the given
// linear (C-order) number.
func (g grid) chunkIndex(linear int64) []int64 {
	idx := make([]int64, len(g.counts))
	for i := len(g.counts) - 1; i >= 0; i-- {
		idx[i] = linear % g.counts[i]
		linear /= g.counts[i]
	}
	return idx
}

// region returns the part of the array that chunk idx covers: its first
// element and its extent, which is smaller than the chunk shape for edge
// chunks.
func (g grid) region(idx []int64) (origin, extent []int64) {
	origin = make([]int64, len(idx))
	extent = make([]int64, len(idx))
	for i := range idx {
		origin[i] = idx[i] * g.chunks[i]
		extent[i] = min(g.chunks[i], g.shape[i]-origin[i])
	}
	return origin, extent
}

// product returns the product of dims, 1 for none.
func product(dims []int64) int64 {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	return n
}

// contiguousOffset returns the element offset of the box at origin with
// the given extent inside a C-order array of shape, and whether the box is
// one contiguous run of memory there. That holds when the dimensions
// before some dimension k have extent 1 and those after k are full.
func contiguousOffset(shape, origin, extent []int64) (int64, bool) {
	offset := int64(0)
	for i := range shape {
		offset = offset*shape[i] + origin[i]
	}
	k := 0
	for k < len(shape) && extent[k] == 1 {
		k++
	}
	for j := k + 1; j < len(shape); j++ {
		if extent[j] != shape[j] {
			return offset, false
		}
	}
	return offset, true
}

// copyBox copies a box of elements between two C-order arrays: the box
// of the given extent at srcOrigin in src (shape srcShape) goes to
// dstOrigin in dst (shape dstShape). Trailing dimensions that both arrays
// cover in full merge into one run, so copyRun gets the longest contiguous
// pieces possible. Each call of copyRun receives a dst run and a src run
// of the same element count, of dstSize and srcSize bytes per element.
func copyBox(dst []byte, dstShape, dstOrigin []int64, dstSize int64,
	src []byte, srcShape, srcOrigin []int64, srcSize int64,
	extent []int64, copyRun func(dst, src []byte)) {
	rank := len(extent)
	if product(extent) == 0 {
		return
	}
	// Dimensions k.. form one run of run elements.
	k, run := rank, int64(1)
	for k > 0 {
		j := k - 1
		run *= extent[j]
		k = j
		if extent[j] != dstShape[j] || extent[j] != srcShape[j] {
			break
		}
	}
	dstStride := strides(dstShape)
	srcStride := strides(srcShape)
	// idx walks the outer dimensions 0..k-1 of the box like an odometer.
	idx := make([]int64, k)
	for {
		var d, s int64
		for i := 0; i < rank; i++ {
			var at int64
			if i < k {
				at = idx[i]
			}
			d += (dstOrigin[i] + at) * dstStride[i]
			s += (srcOrigin[i] + at) * srcStride[i]
		}
		copyRun(dst[d*dstSize:(d+run)*dstSize], src[s*srcSize:(s+run)*srcSize])
		i := k - 1
		for ; i >= 0; i-- {
			idx[i]++
			if idx[i] < extent[i] {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return
		}
	}
}

// strides returns the C-order element strides of shape.
func strides(shape []int64) []int64 {
	s := make([]int64, len(shape))
	n := int64(1)
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = n
		n *= shape[i]
	}
	return s
}

// copyBytes is copyBox's copyRun when no dtype conversion is needed.
func copyBytes(dst, src []byte) { copy(dst, src) }
