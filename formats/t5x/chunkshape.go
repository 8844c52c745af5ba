package t5x

// DefaultChunkBytes is the chunk size T5X aims at, 64 MiB
// (_DESIRED_CHUNK_SIZE_BYTES in t5x/checkpoints.py).
const DefaultChunkBytes = 64 << 20

// ChunkShape returns the chunk shape T5X chooses for an array of the given
// shape whose elements are itemSize bytes, aiming at targetBytes per chunk.
//
// The rule: the target is targetBytes/itemSize elements (at least 1).
// Start from the full shape. While the chunk has more elements than the
// target, lower its largest dimension (the first one on a tie) to the
// next smaller divisor of that dimension's full length. Every chunk length
// therefore divides its dimension, so the chunks tile the array with no
// partial edge chunks. A dimension of length 0 gets chunk length 1, since
// zarr requires positive chunk lengths; such an array has no chunks.
//
// A length with few divisors can force small chunks: a prime dimension
// larger than the target drops straight to 1.
func ChunkShape(shape []int64, itemSize int, targetBytes int64) []int64 {
	target := int64(1)
	if itemSize > 0 && targetBytes/int64(itemSize) > 1 {
		target = targetBytes / int64(itemSize)
	}
	// divisors[i] lists the divisors of shape[i] in ascending order; the
	// current chunk length of dimension i is its last entry.
	divisors := make([][]int64, len(shape))
	for i, n := range shape {
		if n <= 0 {
			divisors[i] = []int64{1}
			continue
		}
		divisors[i] = divisorsOf(n)
	}
	for elementsOf(divisors) > target {
		largest, size := -1, int64(1)
		for i, d := range divisors {
			if last := d[len(d)-1]; last > size {
				largest, size = i, last
			}
		}
		if largest < 0 {
			break // every chunk length is 1, which target >= 1 always admits
		}
		divisors[largest] = divisors[largest][:len(divisors[largest])-1]
	}
	chunks := make([]int64, len(shape))
	for i, d := range divisors {
		chunks[i] = d[len(d)-1]
	}
	return chunks
}

// elementsOf returns the number of elements in the current chunk shape,
// saturating at the maximum int64 instead of overflowing.
func elementsOf(divisors [][]int64) int64 {
	n := int64(1)
	for _, d := range divisors {
		last := d[len(d)-1]
		if n > (1<<63-1)/last {
			return 1<<63 - 1
		}
		n *= last
	}
	return n
}

// divisorsOf returns the divisors of n > 0 in ascending order, by trial
// division up to the square root of n.
func divisorsOf(n int64) []int64 {
	var low, high []int64
	for d := int64(1); d <= n/d; d++ {
		if n%d != 0 {
			continue
		}
		low = append(low, d)
		if d != n/d {
			high = append(high, n/d)
		}
	}
	for i := len(high) - 1; i >= 0; i-- {
		low = append(low, high[i])
	}
	return low
}
