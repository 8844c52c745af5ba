package zarr

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"ckptbench/tensor"
)

// ErrMissingChunk is wrapped by the error ReadArrayWith returns for a
// chunk file that does not exist when ReadOptions.RequireChunks is set.
var ErrMissingChunk = errors.New("chunk file is missing")

// ChunkKey returns the name of the chunk file at the given chunk grid
// index: the indexes joined by sep ("." or "/"), or "0" for the single
// chunk of a zero-dimensional array.
func ChunkKey(index []int64, sep string) string {
	if len(index) == 0 {
		return "0"
	}
	var b strings.Builder
	for i, v := range index {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(strconv.FormatInt(v, 10))
	}
	return b.String()
}

// NewMetadata returns the metadata of a C-order array of the given dtype
// and shape, stored in chunks of the given shape and compressed with c,
// with fill value 0 (false for bool) and "." as the dimension separator.
func NewMetadata(dtype tensor.DType, shape, chunks []int64, c Codec) (Metadata, error) {
	ds, err := DTypeString(dtype)
	if err != nil {
		return Metadata{}, err
	}
	fill := "0"
	if dtype == tensor.Bool {
		fill = "false"
	}
	md := Metadata{
		ZarrFormat: 2,
		Shape:      slices.Clone(shape),
		Chunks:     slices.Clone(chunks),
		DType:      ds,
		Compressor: c.Compressor(),
		FillValue:  []byte(fill),
		Order:      "C",
		Filters:    []byte("null"),
	}
	if md.Shape == nil {
		md.Shape, md.Chunks = []int64{}, []int64{}
	}
	return md, md.Validate()
}

// ChunkShape returns the chunk shape for an array of the given shape and
// element size. It is the whole array when that fits in maxBytes. Else
// the leading dimensions are cut so that a chunk has at most maxBytes, or
// a single element when even that is larger. The cuts need not divide the
// shape, because edge chunks are stored full size, as zarr requires.
func ChunkShape(shape []int64, itemSize int, maxBytes int64) []int64 {
	chunks := slices.Clone(shape)
	for i := range chunks {
		chunks[i] = max(chunks[i], 1)
	}
	// inner is the byte size of one index step along dimension i.
	inner := int64(itemSize)
	for i := len(chunks) - 1; i >= 0; i-- {
		inner *= chunks[i]
	}
	for i := range chunks {
		inner /= chunks[i]
		if inner*chunks[i] <= maxBytes {
			break
		}
		chunks[i] = max(maxBytes/inner, 1)
		if inner*chunks[i] <= maxBytes {
			break
		}
		// Even one step along dimension i is too big: keep a single index
		// here and cut the next dimension.
		chunks[i] = 1
	}
	return chunks
}

// grid describes the chunking of one array.
type grid struct {
	shape, chunks []int64
	itemSize      int64
	counts        []int64 // number of chunks along each dimension
	chunkBytes    int64
}

func newGrid(md Metadata) (grid, error) {
	dtype, err := md.TensorDType()
	if err != nil {
		return grid{}, err
	}
	g := grid{shape: md.Shape, chunks: md.Chunks, itemSize: int64(dtype.Size())}
	g.chunkBytes = g.itemSize
	for i := range g.shape {
		g.counts = append(g.counts, (g.shape[i]+g.chunks[i]-1)/g.chunks[i])
		g.chunkBytes *= g.chunks[i]
	}
	return g, nil
}

// each calls fn with every chunk index in C order, stopping at an error.
// An array with a zero-length dimension has no chunks.
func (g grid) each(fn func(index []int64) error) error {
	index := make([]int64, len(g.shape))
	for _, n := range g.counts {
		if n == 0 {
			return nil
		}
	}
	for {
		if err := fn(index); err != nil {
			return err
		}
		i := len(index) - 1
		for ; i >= 0; i-- {
			index[i]++
			if index[i] < g.counts[i] {
				break
			}
			index[i] = 0
		}
		if i < 0 {
			return nil
		}
	}
}

// contiguous reports whether the part of the chunk at index that lies
// inside the array is one contiguous byte range of the array, and returns
// the range's offset and length. That is the case when some dimension j is
// cut, every dimension before it has chunk length 1 and every dimension
// after it is whole. The valid part is then also the start of the chunk.
func (g grid) contiguous(index []int64) (off, n int64, ok bool) {
	cut := -1
	for i := range g.shape {
		if g.chunks[i] != g.shape[i] {
			cut = i
		}
	}
	for i := 0; i < cut; i++ {
		if g.chunks[i] != 1 {
			return 0, 0, false
		}
	}
	stride := g.itemSize
	for i := len(g.shape) - 1; i >= 0; i-- {
		off += index[i] * g.chunks[i] * stride
		stride *= g.shape[i]
	}
	n = g.chunkBytes
	if cut >= 0 {
		start := index[cut] * g.chunks[cut]
		n = g.chunkBytes / g.chunks[cut] * min(g.chunks[cut], g.shape[cut]-start)
	}
	return off, n, true
}

// copyBlock copies the part of the chunk at index that lies inside the
// array between the array's bytes and a full-size chunk buffer: from the
// chunk into the array when toArray, else from the array into the chunk.
func (g grid) copyBlock(array, chunk []byte, index []int64, toArray bool) {
	nd := len(g.shape)
	if nd == 0 {
		if toArray {
			copy(array, chunk)
		} else {
			copy(chunk, array)
		}
		return
	}
	start := make([]int64, nd)
	extent := make([]int64, nd)
	for i := range nd {
		start[i] = index[i] * g.chunks[i]
		extent[i] = min(g.chunks[i], g.shape[i]-start[i])
	}
	// Strides in bytes, of the array and of the chunk.
	arrayStride := make([]int64, nd)
	chunkStride := make([]int64, nd)
	as, cs := g.itemSize, g.itemSize
	for i := nd - 1; i >= 0; i-- {
		arrayStride[i], chunkStride[i] = as, cs
		as *= g.shape[i]
		cs *= g.chunks[i]
	}

	// Copy one run of the last dimension per position in the others.
	run := extent[nd-1] * g.itemSize
	pos := make([]int64, nd-1)
	for {
		a, c := start[nd-1]*g.itemSize, int64(0)
		for i := range pos {
			a += (start[i] + pos[i]) * arrayStride[i]
			c += pos[i] * chunkStride[i]
		}
		if toArray {
			copy(array[a:a+run], chunk[c:c+run])
		} else {
			copy(chunk[c:c+run], array[a:a+run])
		}
		i := len(pos) - 1
		for ; i >= 0; i-- {
			pos[i]++
			if pos[i] < extent[i] {
				break
			}
			pos[i] = 0
		}
		if i < 0 {
			return
		}
	}
}

// maxScratchBytes bounds the buffer ReadArray allocates for a chunk that
// it cannot decode in place, so that a .zarray with absurd chunk lengths
// fails with an error instead of exhausting memory. 4 GiB is twice the
// largest chunk blosc can encode.
const maxScratchBytes = 4 << 30

// ReadOptions changes how ReadArrayWith treats the store.
type ReadOptions struct {
	// RequireChunks makes a missing chunk file an error (ErrMissingChunk)
	// instead of reading as the fill value. Readers of checkpoints that
	// are known to store every chunk set it, so a lost file is reported
	// instead of read back as zeros.
	RequireChunks bool
}

// ReadArray reads every chunk of the array in dir into dst, which must
// have the array's size in bytes, in C order. Like TensorStore, it treats
// a missing chunk file as a chunk of the fill value.
func ReadArray(dir string, md Metadata, dst []byte) error {
	return ReadArrayWith(dir, md, dst, ReadOptions{})
}

// ReadArrayWith is ReadArray with options.
func ReadArrayWith(dir string, md Metadata, dst []byte, opts ReadOptions) error {
	if err := md.Validate(); err != nil {
		return fmt.Errorf("zarr: array %s: %w", dir, err)
	}
	dtype, _ := md.TensorDType()
	want := (tensor.Meta{DType: dtype, Shape: md.Shape}).NumBytes()
	if int64(len(dst)) != want {
		return fmt.Errorf("zarr: array %s: destination has %d bytes, but shape %v of %s needs %d", dir, len(dst), md.Shape, md.DType, want)
	}
	codec, err := CodecFromMetadata(md.Compressor)
	if err != nil {
		if errors.Is(err, ErrUnsupportedCodec) {
			return unsupportedCodecError(dir, err)
		}
		return fmt.Errorf("zarr: array %s: %w", dir, err)
	}
	fill, _ := md.FillBytes()
	g, err := newGrid(md)
	if err != nil {
		return fmt.Errorf("zarr: array %s: %w", dir, err)
	}
	r := chunkReader{codec: codec, raw: codec.ID() == "raw", scratch: getBuffer(), encoded: getBuffer()}
	defer chunkBuffers.Put(r.scratch)
	defer chunkBuffers.Put(r.encoded)
	var scratch []byte // the decode buffer, once a chunk needs one
	return g.each(func(index []int64) error {
		path := filepath.Join(dir, filepath.FromSlash(ChunkKey(index, md.Separator())))
		off, n, contiguous := g.contiguous(index)
		// A chunk that fills a contiguous range of dst exactly decodes
		// straight into dst; any other goes through a chunk-size buffer.
		var target []byte
		if contiguous && n == g.chunkBytes {
			target = dst[off : off+n]
		} else {
			if scratch == nil {
				if g.chunkBytes > maxScratchBytes {
					return fmt.Errorf("zarr: array %s: chunks %v of %d bytes each are larger than the %d bytes this reader buffers for a chunk that does not map onto a contiguous part of the array; re-save the array with smaller chunks", dir, md.Chunks, g.chunkBytes, int64(maxScratchBytes))
				}
				scratch = growBuffer(r.scratch, g.chunkBytes)
			}
			target = scratch
		}
		found, err := r.read(path, target)
		if err != nil {
			return err
		}
		if !found {
			if opts.RequireChunks {
				return fmt.Errorf("zarr: read chunk %s: %w; the array's writer stores every chunk, so data was lost", path, ErrMissingChunk)
			}
			fillBytes(target, fill)
		}
		switch {
		case contiguous && n == g.chunkBytes:
			// Already in place.
		case contiguous:
			copy(dst[off:off+n], target[:n])
		default:
			g.copyBlock(dst, target, index, true)
		}
		return nil
	})
}

// chunkBuffers recycles the encode, decode and padding buffers of
// ReadArray and WriteArray between arrays. A save of a multi-gigabyte
// state dict held in the Go heap would otherwise leave one dead buffer
// per tensor until the next collection, which the large live heap
// postpones.
var chunkBuffers sync.Pool // of *[]byte

// getBuffer returns a recycled buffer, or a new empty one.
func getBuffer() *[]byte {
	if p, ok := chunkBuffers.Get().(*[]byte); ok {
		return p
	}
	return new([]byte)
}

// growBuffer returns *p resized to n bytes, reallocating when its
// capacity is too small. Its contents are undefined.
func growBuffer(p *[]byte, n int64) []byte {
	if int64(cap(*p)) < n {
		*p = make([]byte, n)
	}
	return (*p)[:n]
}

// fillBytes repeats the element elem over dst.
func fillBytes(dst, elem []byte) {
	if len(dst) == 0 {
		return
	}
	n := copy(dst, elem)
	for n < len(dst) {
		n += copy(dst[n:], dst[:n])
	}
}

// chunkReader reads chunk files, reusing its buffers between chunks.
type chunkReader struct {
	codec   Codec
	raw     bool
	scratch *[]byte // one decoded chunk, for chunks that do not map onto dst
	encoded *[]byte // one chunk file, for compressed chunks
}

// read decodes the chunk file at path into target, which has the size of
// a full chunk. It returns false, and no error, when the file does not
// exist.
func (r *chunkReader) read(path string, target []byte) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("zarr: read chunk: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("zarr: read chunk: %w", err)
	}
	if !info.Mode().IsRegular() {
		return false, fmt.Errorf("zarr: read chunk %s: not a regular file", path)
	}

	size := info.Size()
	if r.raw {
		// Uncompressed chunks go from the file straight into target.
		if size != int64(len(target)) {
			return false, fmt.Errorf("zarr: read chunk %s: %w: the file has %d bytes, an uncompressed chunk has %d; the file is truncated or belongs to another array", path, ErrChunkSize, size, len(target))
		}
		if _, err := io.ReadFull(f, target); err != nil {
			return false, fmt.Errorf("zarr: read chunk %s: %w", path, err)
		}
		return true, nil
	}

	encoded := growBuffer(r.encoded, size)
	if _, err := io.ReadFull(f, encoded); err != nil {
		return false, fmt.Errorf("zarr: read chunk %s: %w", path, err)
	}
	out, err := r.codec.Decode(target, encoded)
	if err != nil {
		return false, fmt.Errorf("zarr: read chunk %s: %w; the file is damaged, truncated or belongs to another array", path, err)
	}
	if len(out) != len(target) {
		return false, fmt.Errorf("zarr: read chunk %s: %w: it decodes to %d bytes, a chunk has %d; the file is truncated or belongs to another array", path, ErrChunkSize, len(out), len(target))
	}
	return true, nil
}
