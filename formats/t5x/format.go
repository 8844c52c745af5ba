package t5x

import (
	"fmt"
	"runtime"
	"sync/atomic"

	"ckptbench/formats"
	"ckptbench/formats/zarr"
	"ckptbench/tensor"
)

// Defaults for Options fields left zero.
const (
	// DefaultIOConcurrency is T5X's TensorStore file_io_concurrency limit.
	DefaultIOConcurrency = 128
	// DefaultByteBudget bounds the chunk bytes in flight. T5X's own
	// default (concurrent_gb=128) assumes a large host; 1 GiB keeps 16
	// chunks of 64 MiB in flight, enough to keep a disk's queue full.
	DefaultByteBudget = 1 << 30
	// DefaultCodec is the compressor T5X writes.
	DefaultCodec = "gzip"
)

// Options configures a Format. The zero value is T5X's configuration:
// gzip, 64 MiB chunks, 128 file operations in flight, with a 1 GiB byte
// budget, and O_DIRECT writes and cold reads.
type Options struct {
	// Codec is the chunk compressor: "gzip", "zstd" or "raw" (none).
	// Empty means DefaultCodec.
	Codec string
	// IOConcurrency is the maximum number of chunk files being written
	// or read at once. Zero means DefaultIOConcurrency.
	IOConcurrency int
	// ByteBudget is the maximum number of chunk bytes in flight, in
	// bytes: chunks being gathered, encoded, written, read or decoded,
	// with their buffers. Resident memory during Save stays within the
	// model's size plus this budget (plus one chunk when a chunk alone
	// exceeds it). Zero means DefaultByteBudget.
	ByteBudget int64
	// ChunkBytes is the target chunk size of T5X's chunk-shape rule (see
	// ChunkShape), in bytes. Zero means DefaultChunkBytes (64 MiB).
	ChunkBytes int64
	// BufferedWrite makes Save write chunk files through the page cache,
	// each followed by fdatasync, instead of with O_DIRECT. BufferedRead
	// makes Load read every chunk file through the page cache. By default
	// Load reads a file with O_DIRECT unless the page cache contains all
	// of it. The defaults are the faster choices measured on
	// OpenLLaMA-3B (see the package comment). O_DIRECT applies to
	// block-aligned transfers and falls back to buffered I/O where the
	// file system rejects it.
	BufferedWrite bool
	BufferedRead  bool
	// CopyCached makes Load copy a tensor's uncompressed chunk files into
	// fresh memory even when the page cache holds them in full. By
	// default Load then maps the cached pages instead, copy-on-write,
	// which makes a warm load several times faster and shares the pages
	// with the cache. Unlike a copy, a mapped tensor shows later writes
	// into its chunk files, so set CopyCached where another program
	// rewrites chunk files in place. BufferedRead implies CopyCached.
	CopyCached bool
	// MinSavings is the fraction of its bytes that compressing a chunk
	// must save, judged on samples, for Save to compress it. A chunk that
	// saves less is written as stored (uncompressed) blocks of the
	// codec's format, which any decoder reads and which cost little CPU
	// to write and read. Zero means DefaultMinSavings (3 %), and a value
	// above 1 stores every chunk. The comment on DefaultMinSavings gives
	// the trade-off.
	MinSavings float64
	// EncodeEveryChunk sends every chunk through the codec, whatever it
	// saves, overriding MinSavings.
	EncodeEveryChunk bool
	// RestoreDType, when set, casts every floating-point tensor (float16,
	// bfloat16, float32, float64) to this dtype on load, as T5X's
	// restore_dtype does. Other tensors keep their stored dtype.
	RestoreDType tensor.DType
	// VerifyOnLoad makes Load check every chunk against the CRC-32C that
	// Save records in the index (see Verify) as the chunk is read, and
	// reject an index that records no checksums.
	VerifyOnLoad bool

	// testHookWrite, when set, runs before each chunk file is created
	// during Save; an error fails the save there.
	testHookWrite func(path string) error
	// testPeakBytes, when set, receives the most bytes the byte budget
	// had in use at once during each Save or Load.
	testPeakBytes *atomic.Int64
}

// Format writes and reads T5X-style checkpoints; see the package comment.
type Format struct {
	opts    Options
	codec   zarr.Codec
	encoder *chunkEncoder
}

var _ formats.Format = (*Format)(nil)

// New returns the t5x format with the given options, defaults filled in.
func New(opts Options) (*Format, error) {
	if opts.Codec == "" {
		opts.Codec = DefaultCodec
	}
	switch opts.Codec {
	case "raw", "gzip", "zstd":
	default:
		return nil, fmt.Errorf("t5x: unknown codec %q; want gzip, zstd or raw", opts.Codec)
	}
	codec, err := zarr.CodecFor(opts.Codec)
	if err != nil {
		return nil, fmt.Errorf("t5x: %w", err)
	}

	switch {
	case opts.IOConcurrency < 0:
		return nil, fmt.Errorf("t5x: IOConcurrency %d is negative; use 0 for the default of %d", opts.IOConcurrency, DefaultIOConcurrency)
	case opts.ByteBudget < 0:
		return nil, fmt.Errorf("t5x: ByteBudget %d is negative; use 0 for the default of %d", opts.ByteBudget, DefaultByteBudget)
	case opts.MinSavings < 0:
		return nil, fmt.Errorf("t5x: MinSavings %v is negative; use 0 for the default of %v", opts.MinSavings, DefaultMinSavings)
	case opts.ChunkBytes < 0:
		return nil, fmt.Errorf("t5x: ChunkBytes %d is negative; use 0 for the default of %d", opts.ChunkBytes, DefaultChunkBytes)
	}
	if opts.RestoreDType != tensor.Invalid && !isFloat(opts.RestoreDType) {
		return nil, fmt.Errorf("t5x: RestoreDType %v is not a floating-point dtype; want float16, bfloat16, float32 or float64", opts.RestoreDType)
	}

	if opts.IOConcurrency == 0 {
		opts.IOConcurrency = DefaultIOConcurrency
	}
	if opts.ByteBudget == 0 {
		opts.ByteBudget = DefaultByteBudget
	}
	if opts.ChunkBytes == 0 {
		opts.ChunkBytes = DefaultChunkBytes
	}
	if opts.MinSavings == 0 {
		opts.MinSavings = DefaultMinSavings
	}

	encoder, err := newChunkEncoder(codec, opts.MinSavings, opts.EncodeEveryChunk)
	if err != nil {
		return nil, fmt.Errorf("t5x: %w", err)
	}
	return &Format{opts: opts, codec: codec, encoder: encoder}, nil
}

// Name returns "t5x".
func (f *Format) Name() string { return "t5x" }

// Codec returns the compressor id: "gzip", "zstd" or "raw".
func (f *Format) Codec() string { return f.codec.ID() }

// cpuWorkers is the number of goroutines that gather, encode and decode:
// one per core Go may use.
func cpuWorkers() int { return runtime.GOMAXPROCS(0) }

// newPipeline starts the pipeline of one Save or Load.
func (f *Format) newPipeline() *pipeline {
	return newPipeline(f.opts.IOConcurrency, f.opts.ByteBudget, f.opts.testPeakBytes)
}
