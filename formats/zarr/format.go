package zarr

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"ckptbench/formats"
	"ckptbench/iox"
	"ckptbench/tensor"
)

// DefaultMaxChunkBytes is the chunk size above which Save splits a tensor
// into several chunks. 1 GiB keeps every chunk below blosc's limit of
// about 2 GiB per buffer, so TensorStore can re-encode a saved array with
// its default codec without re-chunking, and it bounds the memory a
// reader needs for one chunk. Every tensor of OpenLLaMA-3B and -7B (at
// most 250 MiB in float16) is a single chunk.
const DefaultMaxChunkBytes = 1 << 30

// Options configures a Format.
type Options struct {
	// Codec is "raw" (no compression), "gzip", "zstd" or "zlib"; empty
	// means raw.
	Codec string
	// MaxChunkBytes is the largest chunk Save writes; zero means
	// DefaultMaxChunkBytes.
	MaxChunkBytes int64
	// VerifyOnLoad makes Load check every tensor against the CRC-32C
	// that Save records in the index (see Verify).
	VerifyOnLoad bool
}

// Format saves a checkpoint as one zarr v2 array per tensor; see the
// package comment for the layout.
type Format struct {
	codec    Codec
	maxChunk int64
	verify   bool
}

var _ formats.Format = (*Format)(nil)

// New returns the zarr format with the given options.
func New(opts Options) (*Format, error) {
	c, err := CodecFor(opts.Codec)
	if err != nil {
		return nil, err
	}
	if opts.MaxChunkBytes < 0 {
		return nil, fmt.Errorf("zarr: MaxChunkBytes %d is negative", opts.MaxChunkBytes)
	}
	if opts.MaxChunkBytes == 0 {
		opts.MaxChunkBytes = DefaultMaxChunkBytes
	}
	return &Format{codec: c, maxChunk: opts.MaxChunkBytes, verify: opts.VerifyOnLoad}, nil
}

// Name returns "zarr".
func (f *Format) Name() string { return "zarr" }

// Codec returns the codec's id: "raw", "gzip", "zstd" or "zlib".
func (f *Format) Codec() string { return f.codec.ID() }

// Save writes sd to path as described in the package comment. It writes
// the tensors one after another and fsyncs each file as it is written, as
// TensorStore's file driver does by default. Then it syncs every
// directory, writes the index and publishes the finished directory at
// path with iox.Commit. On error it removes the temporary directory and
// leaves path as it was. It rejects a path that holds anything but a zarr
// checkpoint or an empty directory, which the commit would delete.
func (f *Format) Save(path string, sd *tensor.StateDict) (err error) {
	if err := sd.Validate(); err != nil {
		return fmt.Errorf("zarr: save %s: %w", path, err)
	}
	if err := checkReplaceable(path); err != nil {
		return fmt.Errorf("zarr: save %s: %w", path, err)
	}
	idx, err := buildIndex(sd)
	if err != nil {
		return err
	}
	tmp := iox.TempPath(path)
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("zarr: save: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	parents := map[string]bool{}
	for i, t := range sd.Tensors {
		rel := idx.Tensors[i].Path
		chunks := ChunkShape(t.Shape, t.DType.Size(), f.maxChunk)
		md, err := NewMetadata(t.DType, t.Shape, chunks, f.codec)
		if err != nil {
			return fmt.Errorf("zarr: tensor %q: %w", t.Name, err)
		}
		// The checksum is computed on another core while the array is
		// written, so it costs the save no time when a core is free.
		sum := make(chan uint32, 1)
		go func() { sum <- checksum(t.Data) }()
		if err := WriteArray(filepath.Join(tmp, filepath.FromSlash(rel)), md, f.codec, t.Data); err != nil {
			return fmt.Errorf("zarr: tensor %q: %w", t.Name, err)
		}
		crc := <-sum
		idx.Tensors[i].CRC32C = &crc
		for dir := rel; strings.Contains(dir, "/"); {
			dir = dir[:strings.LastIndexByte(dir, '/')]
			parents[dir] = true
		}
	}
	// Deepest directories first, so each directory's entry is synced after
	// its contents.
	dirs := make([]string, 0, len(parents))
	for d := range parents {
		dirs = append(dirs, d)
	}
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	for _, d := range dirs {
		if err := iox.SyncDir(filepath.Join(tmp, filepath.FromSlash(d))); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return fmt.Errorf("zarr: save %s: %w", path, err)
	}
	if err := writeFileSync(filepath.Join(tmp, IndexFile), b); err != nil {
		return err
	}
	if err := iox.SyncDir(tmp); err != nil {
		return err
	}
	return iox.Commit(tmp, path)
}

// Load reads the checkpoint at path. Each array's chunks are decoded
// straight into the tensor's memory when a chunk covers a contiguous part
// of it, which is the case for every array Save writes. A missing chunk
// file is an error, not the fill value TensorStore would read, because
// Save writes every chunk: a missing one means lost data. Each array's
// dtype and shape must match the index.
func (f *Format) Load(path string) (*tensor.StateDict, error) {
	idx, err := readIndex(path)
	if err != nil {
		return nil, err
	}
	sd := &tensor.StateDict{Tensors: make([]*tensor.Tensor, 0, len(idx.Tensors))}
	for _, e := range idx.Tensors {
		dir := filepath.Join(path, filepath.FromSlash(e.Path))
		t, err := loadTensor(sd, dir, e)
		if err == nil && f.verify {
			err = verifyTensor(dir, e, t.Data)
		}
		if err != nil {
			sd.Close()
			return nil, &tensorError{name: e.Name, err: err}
		}
		sd.Add(t)
	}
	return sd, nil
}

// loadTensor reads the array in dir into memory allocated from sd, after
// checking its metadata against the index entry e.
func loadTensor(sd *tensor.StateDict, dir string, e IndexEntry) (*tensor.Tensor, error) {
	md, err := ReadMetadata(dir)
	if err != nil {
		return nil, err
	}
	dtype, err := md.TensorDType()
	if err != nil {
		return nil, err
	}
	metaPath := filepath.Join(dir, MetadataFile)
	if dtype != e.DType {
		return nil, fmt.Errorf("%s has dtype %s (%s), but the index lists %s; the checkpoint is inconsistent, re-save it", metaPath, md.DType, dtype, e.DType)
	}
	if !slices.Equal(md.Shape, e.Shape) {
		return nil, fmt.Errorf("%s has shape %v, but the index lists %v; the checkpoint is inconsistent, re-save it", metaPath, md.Shape, e.Shape)
	}
	data, err := sd.Alloc((tensor.Meta{DType: e.DType, Shape: e.Shape}).NumBytes())
	if err != nil {
		return nil, err
	}
	t := &tensor.Tensor{Meta: tensor.Meta{Name: e.Name, DType: e.DType, Shape: slices.Clone(e.Shape)}, Data: data}
	if err := ReadArrayWith(dir, md, t.Data, ReadOptions{RequireChunks: true}); err != nil {
		return nil, err
	}
	return t, nil
}

// tensorError adds the name of the tensor being loaded to an error from
// the array primitives, which name only files.
type tensorError struct {
	name string
	err  error
}

func (e *tensorError) Error() string {
	return fmt.Sprintf("zarr: tensor %q: %s", e.name, strings.TrimPrefix(e.err.Error(), "zarr: "))
}

func (e *tensorError) Unwrap() error { return e.err }
