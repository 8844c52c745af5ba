package t5x

import (
	"encoding/binary"
	"encoding/json"
	"sync"

	"ckptbench/formats/zarr"
)

// Weights barely compress with fast codecs, and compressing them costs
// far more time than the bytes it saves. On synthetic float16 weights the
// zarr package's gzip (Huffman-only) and zstd save 8 %, encoding at
// 200-260 MB/s and decoding gzip at 50-80 MB/s per core, while a disk
// moves 1-2 GB/s (BenchmarkCodec in formats/zarr, on a 2-core VM). So a
// chunk is first judged by compressing samples of it. One whose samples
// shrink by less than the minimum savings is written as a valid stream of
// stored blocks of the same codec, for the cost of a copy and a checksum,
// which every gzip or zstd decoder reads.
const (
	// sampleBytes is the size of each of the four samples. A chunk of at
	// most 4*sampleBytes is compressed whole instead.
	sampleBytes = 16 << 10
	// DefaultMinSavings is the fraction of bytes that samples of a chunk
	// must save for the chunk to be compressed: less counts as
	// incompressible.
	DefaultMinSavings = 0.03
)

// chunkEncoder encodes chunks with an array's codec, storing chunks that
// do not compress unless every chunk must go through the codec.
type chunkEncoder struct {
	codec      zarr.Codec
	minSavings float64
	// store writes src as an uncompressed stream of codec's format; nil
	// when the codec is raw or every chunk is to be compressed.
	store   func(dst, src []byte) ([]byte, error)
	scratch sync.Pool // buffers (*[]byte) for the encoded samples
}

func newChunkEncoder(codec zarr.Codec, minSavings float64, encodeAll bool) (*chunkEncoder, error) {
	e := &chunkEncoder{codec: codec, minSavings: minSavings}
	if encodeAll {
		return e, nil
	}
	switch codec.ID() {
	case "gzip":
		stored, err := zarr.CodecFromMetadata(json.RawMessage(`{"id":"gzip","level":0}`))
		if err != nil {
			return nil, err
		}
		e.store = stored.Encode
	case "zstd":
		e.store = func(dst, src []byte) ([]byte, error) { return appendZstdRaw(dst[:0], src), nil }
	}
	return e, nil
}

// encode returns src encoded, in dst's memory when it has the capacity.
func (e *chunkEncoder) encode(dst, src []byte) ([]byte, error) {
	if e.store == nil {
		return e.codec.Encode(dst, src)
	}
	if len(src) <= 4*sampleBytes {
		out, err := e.codec.Encode(dst, src)
		if err != nil || float64(len(out)) <= (1-e.minSavings)*float64(len(src)) {
			return out, err
		}
		return e.store(dst, src)
	}
	compresses, err := e.samplesCompress(src)
	if err != nil {
		return nil, err
	}
	if compresses {
		return e.codec.Encode(dst, src)
	}
	return e.store(dst, src)
}

// samplesCompress compresses four evenly spaced samples of src and
// reports whether they save at least the minimum savings.
func (e *chunkEncoder) samplesCompress(src []byte) (bool, error) {
	bufp, _ := e.scratch.Get().(*[]byte)
	if bufp == nil {
		b := make([]byte, 0, encodeBound(sampleBytes))
		bufp = &b
	}
	defer e.scratch.Put(bufp)
	var in, out int
	step := (len(src) - sampleBytes) / 3
	for i := range 4 {
		sample := src[i*step : i*step+sampleBytes]
		enc, err := e.codec.Encode((*bufp)[:0], sample)
		if err != nil {
			return false, err
		}
		in += len(sample)
		out += len(enc)
	}
	return float64(out) <= (1-e.minSavings)*float64(in), nil
}

// zstdRawBlock is the largest raw block a frame with a window of at
// least 128 KiB may hold (the zstd format's Block_Maximum_Size).
const zstdRawBlock = 128 << 10

// appendZstdRaw appends a zstd frame (RFC 8878) that contains src in raw,
// uncompressed blocks. The frame header records the content size, which
// numcodecs' decoder requires, and a 1 MiB window, which every decoder
// accepts. Raw blocks never refer back into the window.
func appendZstdRaw(dst, src []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, 0xFD2FB528)
	// Frame header descriptor: an 8-byte content size field, a window
	// descriptor, no checksum, no dictionary.
	dst = append(dst, 0b11_0_0_0_0_00)
	// Window descriptor: exponent 10, mantissa 0, for 1<<(10+10) bytes.
	dst = append(dst, 10<<3)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(src)))
	for {
		n := min(len(src), zstdRawBlock)
		last := 0
		if n == len(src) {
			last = 1
		}
		// Block header, 3 bytes little-endian: last-block flag, block
		// type 0 (raw), size.
		h := uint32(last) | uint32(n)<<3
		dst = append(dst, byte(h), byte(h>>8), byte(h>>16))
		dst = append(dst, src[:n]...)
		src = src[n:]
		if last == 1 {
			return dst
		}
	}
}
