package zarr

import (
	"bytes"
	"compress/bzip2"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// ErrUnsupportedCodec is wrapped by errors about a compressor this
// package cannot decode, such as blosc.
var ErrUnsupportedCodec = errors.New("unsupported codec")

// ErrChunkSize is wrapped by errors about a chunk whose decoded size is
// not the chunk size that the metadata implies (a truncated or foreign
// chunk file).
var ErrChunkSize = errors.New("chunk has the wrong size")

// Codec compresses and decompresses zarr chunks. Implementations are safe
// for concurrent use.
type Codec interface {
	// ID is the compressor id in .zarray ("gzip", "zstd", ...) or "raw"
	// for uncompressed chunks (compressor null).
	ID() string
	// Compressor returns the .zarray compressor value: JSON null for raw,
	// else an object with the id and settings.
	Compressor() json.RawMessage
	// Encode returns src compressed, stored in dst's memory when it has
	// the capacity.
	Encode(dst, src []byte) ([]byte, error)
	// Decode decompresses src into the start of dst and returns
	// dst[:n]. It fails with ErrChunkSize when the data decodes to more
	// than len(dst) bytes; the caller checks n for truncation. It never
	// writes beyond len(dst).
	Decode(dst, src []byte) ([]byte, error)
}

// Codecs lists the names CodecFor accepts, for help text and errors.
var Codecs = []string{"raw", "gzip", "zstd", "zlib"}

// Compression levels written by CodecFor: 1, the level TensorStore and
// numcodecs write by default for gzip, zlib and zstd. See deflateLevel
// and newZstd for how the encoders treat level 1 on float weights.
const (
	defaultGzipLevel = 1
	defaultZstdLevel = 1
)

// deflateLevel returns the klauspost/compress level for a gzip or zlib
// level from .zarray. Level 1 becomes Huffman-only coding: on float16
// weights, klauspost's level 1 finds no matches and stores the data raw
// (ratio 1.000), while Huffman-only coding of the bytes saves 8 % at a
// similar speed (BenchmarkCodec). The level in .zarray only guides
// writers; every deflate stream decodes the same way.
func deflateLevel(level int) int {
	if level == 1 {
		return gzip.HuffmanOnly
	}
	return level
}

// CodecFor returns the codec that writes chunks with the named
// compressor at its default level: "raw" (no compressor), "gzip",
// "zstd" or "zlib".
func CodecFor(name string) (Codec, error) {
	switch name {
	case "raw", "":
		return rawCodec{}, nil
	case "gzip":
		return newGzip(defaultGzipLevel)
	case "zlib":
		return newZlib(defaultGzipLevel)
	case "zstd":
		return newZstd(defaultZstdLevel)
	}
	return nil, fmt.Errorf("zarr: %w %q; want one of raw, gzip, zstd, zlib", ErrUnsupportedCodec, name)
}

// CodecFromMetadata returns the codec that decodes chunks written with
// the .zarray compressor c. It decodes every TensorStore zarr v2 compressor
// except blosc: null, gzip, zlib, zstd, and bz2 (decode only).
func CodecFromMetadata(c json.RawMessage) (Codec, error) {
	id, err := compressorID(c)
	if err != nil {
		return nil, err
	}
	var settings struct {
		Level *int `json:"level"`
	}
	if id != "raw" {
		if err := json.Unmarshal(c, &settings); err != nil {
			return nil, fmt.Errorf("%w: compressor %s: %v", ErrMetadata, c, err)
		}
	}
	level := func(def int) int {
		if settings.Level != nil {
			return *settings.Level
		}
		return def
	}
	switch id {
	case "raw":
		return rawCodec{}, nil
	case "gzip":
		return newGzip(level(defaultGzipLevel))
	case "zlib":
		return newZlib(level(defaultGzipLevel))
	case "zstd":
		return newZstd(level(defaultZstdLevel))
	case "bz2":
		return bz2Codec{level: level(9)}, nil
	}
	return nil, fmt.Errorf("%w %s", ErrUnsupportedCodec, id)
}

// unsupportedCodecError returns the error for an array whose compressor
// cannot be decoded, with the fix.
func unsupportedCodecError(dir string, err error) error {
	return fmt.Errorf("zarr: %w in array %s; re-save with raw, gzip or zstd", err, dir)
}

type rawCodec struct{}

func (rawCodec) ID() string                  { return "raw" }
func (rawCodec) Compressor() json.RawMessage { return json.RawMessage("null") }

func (rawCodec) Encode(dst, src []byte) ([]byte, error) {
	return append(dst[:0], src...), nil
}

func (rawCodec) Decode(dst, src []byte) ([]byte, error) {
	if len(src) > len(dst) {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d of a chunk", ErrChunkSize, len(src), len(dst))
	}
	return dst[:copy(dst, src)], nil
}

// streamDecode reads r into dst and checks that r ends there.
func streamDecode(dst []byte, r io.Reader) ([]byte, error) {
	n, err := io.ReadFull(r, dst)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return dst[:n], nil
	}
	if err != nil {
		return nil, err
	}
	var one [1]byte
	if m, err := r.Read(one[:]); m > 0 || (err != nil && err != io.EOF) {
		if err != nil && err != io.EOF {
			return nil, err
		}
		return nil, fmt.Errorf("%w: decodes to more than the %d bytes of a chunk", ErrChunkSize, len(dst))
	}
	return dst, nil
}

// checkLevel rejects levels outside zlib's 0-9 range, which numcodecs and
// TensorStore require for gzip and zlib.
func checkLevel(id string, level int) error {
	if level < 0 || level > 9 {
		return fmt.Errorf("%w: %s level %d, want 0 to 9", ErrMetadata, id, level)
	}
	return nil
}

// maxDeflateSize bounds the gzip or zlib encoding of n bytes: deflate
// stores incompressible input in blocks of at most 64 KiB with 5 bytes of
// header each, and the gzip wrapper adds 18 bytes. Growing the output
// buffer to this size up front avoids doubling it while writing.
func maxDeflateSize(n int) int {
	return n + 5*(n/65535+1) + 18
}

type gzipCodec struct {
	level   int
	writers sync.Pool
	readers sync.Pool
}

func newGzip(level int) (*gzipCodec, error) {
	if err := checkLevel("gzip", level); err != nil {
		return nil, err
	}
	return &gzipCodec{level: level}, nil
}

func (c *gzipCodec) ID() string { return "gzip" }

func (c *gzipCodec) Compressor() json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"id":"gzip","level":%d}`, c.level))
}

func (c *gzipCodec) Encode(dst, src []byte) ([]byte, error) {
	return deflateEncode(&c.writers, dst, src, func(w io.Writer) (deflateWriter, error) {
		return gzip.NewWriterLevel(w, deflateLevel(c.level))
	})
}

// deflateWriter is a gzip or zlib compressor, which Reset points at a new
// output so that a pool can reuse it.
type deflateWriter interface {
	io.WriteCloser
	Reset(io.Writer)
}

// deflateEncode compresses src into dst's memory with a writer from pool,
// or a new one from newWriter when the pool is empty.
func deflateEncode(pool *sync.Pool, dst, src []byte, newWriter func(io.Writer) (deflateWriter, error)) ([]byte, error) {
	buf := bytes.NewBuffer(dst[:0])
	buf.Grow(maxDeflateSize(len(src)))
	w, _ := pool.Get().(deflateWriter)
	if w == nil {
		var err error
		if w, err = newWriter(buf); err != nil {
			return nil, err
		}
	} else {
		w.Reset(buf)
	}
	defer pool.Put(w)
	if _, err := w.Write(src); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (c *gzipCodec) Decode(dst, src []byte) ([]byte, error) {
	r, _ := c.readers.Get().(*gzip.Reader)
	var err error
	if r == nil {
		r, err = gzip.NewReader(bytes.NewReader(src))
	} else {
		err = r.Reset(bytes.NewReader(src))
	}
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	defer c.readers.Put(r)
	r.Multistream(true)
	out, err := streamDecode(dst, r)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return out, nil
}

type zlibCodec struct {
	level   int
	writers sync.Pool
}

func newZlib(level int) (*zlibCodec, error) {
	if err := checkLevel("zlib", level); err != nil {
		return nil, err
	}
	return &zlibCodec{level: level}, nil
}

func (c *zlibCodec) ID() string { return "zlib" }

func (c *zlibCodec) Compressor() json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"id":"zlib","level":%d}`, c.level))
}

func (c *zlibCodec) Encode(dst, src []byte) ([]byte, error) {
	return deflateEncode(&c.writers, dst, src, func(w io.Writer) (deflateWriter, error) {
		return zlib.NewWriterLevel(w, deflateLevel(c.level))
	})
}

func (c *zlibCodec) Decode(dst, src []byte) ([]byte, error) {
	r, err := zlib.NewReader(bytes.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("zlib: %w", err)
	}
	defer r.Close()
	out, err := streamDecode(dst, r)
	if err != nil {
		return nil, fmt.Errorf("zlib: %w", err)
	}
	return out, nil
}

// zstdCodec encodes whole chunks with EncodeAll, which records the
// content size in the frame header; numcodecs' Zstd decoder rejects
// frames without it.
type zstdCodec struct {
	level int
	enc   *zstd.Encoder
	dec   *zstd.Decoder
}

// zstdShared contains one encoder per level and one decoder for the whole
// process. The encoders and decoder keep their state in pools, so
// EncodeAll and DecodeAll are safe to call concurrently.
var zstdShared = struct {
	sync.Mutex
	enc map[int]*zstd.Encoder
	dec *zstd.Decoder
}{enc: map[int]*zstd.Encoder{}}

func newZstd(level int) (*zstdCodec, error) {
	if level < -131072 || level > 22 {
		return nil, fmt.Errorf("%w: zstd level %d, want at most 22", ErrMetadata, level)
	}
	zstdShared.Lock()
	defer zstdShared.Unlock()
	enc := zstdShared.enc[level]
	if enc == nil {
		var err error
		// Without all-literal entropy coding, klauspost's fast levels store
		// a block that has no matches raw, and no block of float16 weights
		// has matches (ratio 1.000). With it they save 8 %, as libzstd does.
		enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)), zstd.WithAllLitEntropyCompression(true))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		zstdShared.enc[level] = enc
	}
	if zstdShared.dec == nil {
		dec, err := zstd.NewReader(nil)
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		zstdShared.dec = dec
	}
	return &zstdCodec{level: level, enc: enc, dec: zstdShared.dec}, nil
}

func (c *zstdCodec) ID() string { return "zstd" }

func (c *zstdCodec) Compressor() json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"id":"zstd","level":%d}`, c.level))
}

func (c *zstdCodec) Encode(dst, src []byte) ([]byte, error) {
	// Sizing dst for the worst case up front keeps EncodeAll from growing
	// it by repeated appends, which leaves garbage of about twice the
	// chunk.
	if n := c.enc.MaxEncodedSize(len(src)); cap(dst) < n {
		dst = make([]byte, 0, n)
	}
	return c.enc.EncodeAll(src, dst[:0]), nil
}

func (c *zstdCodec) Decode(dst, src []byte) ([]byte, error) {
	var h zstd.Header
	if err := h.Decode(src); err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	if h.HasFCS && h.FrameContentSize > uint64(len(dst)) {
		return nil, fmt.Errorf("%w: zstd frame has %d bytes, more than the %d of a chunk", ErrChunkSize, h.FrameContentSize, len(dst))
	}
	if !h.HasFCS {
		// Without a content size, DecodeAll could grow its output without
		// bound; a stream decoder stops one byte past len(dst).
		r, err := zstd.NewReader(bytes.NewReader(src), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		defer r.Close()
		out, err := streamDecode(dst, r)
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return out, nil
	}
	// The full slice expression keeps DecodeAll from appending past
	// len(dst) into memory that belongs to the caller.
	out, err := c.dec.DecodeAll(src, dst[:0:len(dst)])
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	if len(out) > len(dst) {
		return nil, fmt.Errorf("%w: zstd data decodes to %d bytes, more than the %d of a chunk", ErrChunkSize, len(out), len(dst))
	}
	if len(out) > 0 && &out[0] != &dst[0] {
		copy(dst, out)
	}
	return dst[:len(out)], nil
}

// bz2Codec decodes bz2 chunks with the standard library; Go has no bzip2
// encoder, so Encode fails.
type bz2Codec struct{ level int }

func (bz2Codec) ID() string { return "bz2" }

func (c bz2Codec) Compressor() json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"id":"bz2","level":%d}`, c.level))
}

func (bz2Codec) Encode(dst, src []byte) ([]byte, error) {
	return nil, fmt.Errorf("%w: bz2 can be read but not written (Go has no bzip2 encoder); save with raw, gzip or zstd", ErrUnsupportedCodec)
}

func (bz2Codec) Decode(dst, src []byte) ([]byte, error) {
	out, err := streamDecode(dst, bzip2.NewReader(bytes.NewReader(src)))
	if err != nil {
		return nil, fmt.Errorf("bz2: %w", err)
	}
	return out, nil
}
