package safetensors

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"

	"ckptbench/formats"
	"ckptbench/iox"
	"ckptbench/tensor"
)

// Options selects how a Format loads and what it writes.
type Options struct {
	// Mmap loads through a private memory map whose pages are all faulted
	// in before Load returns, instead of reading with pread into memory
	// from tensor.StateDict.Alloc.
	Mmap bool
	// Metadata is added to the header's __metadata__. The key "format"
	// defaults to "pt", the value transformers requires. Save sets the
	// key ChecksumsKey itself, replacing any value given here.
	Metadata map[string]string
	// VerifyOnLoad makes Load check every tensor against the checksums
	// that Save records in __metadata__ (see Verify).
	VerifyOnLoad bool
}

// Format is the safetensors checkpoint format. A checkpoint is one file.
type Format struct {
	opts Options
}

var _ formats.Format = (*Format)(nil)

// New returns a safetensors format with the given options.
func New(opts Options) *Format {
	return &Format{opts: opts}
}

// Name returns "safetensors".
func (*Format) Name() string { return "safetensors" }

// Codec returns how Load reads the file: "mmap" or "read".
func (f *Format) Codec() string {
	if f.opts.Mmap {
		return "mmap"
	}
	return "read"
}

// WriteFile saves sd to path with default options: durably, atomically
// and with __metadata__ {"format": "pt"}.
func WriteFile(path string, sd *tensor.StateDict) error {
	return New(Options{}).Save(path, sd)
}

// ReadFile loads the file at path into memory with pread. The caller
// closes the returned state dict to release that memory.
func ReadFile(path string) (*tensor.StateDict, error) {
	return New(Options{}).Load(path)
}

// ReadHeader reads and validates the header of the file at path without
// reading any tensor data.
func ReadHeader(path string) (*Header, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer file.Close()
	h, _, err := readHeader(file, path)
	return h, err
}

// Save writes sd to path. The file is written under a temporary name,
// fsynced and then renamed over path, so a failed save leaves the old
// file in place.
func (f *Format) Save(path string, sd *tensor.StateDict) error {
	if err := sd.Validate(); err != nil {
		return fmt.Errorf("safetensors: save %s: %w", path, err)
	}
	if info, err := os.Stat(path); err == nil && info.IsDir() {
		return fmt.Errorf("safetensors: save %s: the path is a directory; a safetensors checkpoint is one file", path)
	}
	if err := iox.CheckParent(path); err != nil {
		return fmt.Errorf("safetensors: save %s: %w", path, err)
	}
	metadata := map[string]string{"format": "pt"}
	maps.Copy(metadata, f.opts.Metadata)
	sums, err := encodeChecksums(sd.Tensors)
	if err != nil {
		return fmt.Errorf("safetensors: save %s: %w", path, err)
	}
	metadata[ChecksumsKey] = sums
	prefix, err := encodeHeader(sd.Tensors, metadata)
	if err != nil {
		return fmt.Errorf("safetensors: save %s: %w", path, err)
	}

	tmp := iox.TempPath(path)
	if err := writeFile(tmp, prefix, sd.Tensors); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("safetensors: save %s: %w", path, err)
	}
	if err := iox.Commit(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("safetensors: save %s: %w", path, err)
	}
	return nil
}

// writeFile creates path and writes the header prefix and every payload,
// then fsyncs it.
func writeFile(path string, prefix []byte, tensors []*tensor.Tensor) (err error) {
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := file.Close(); err == nil {
			err = cerr
		}
	}()
	// Small tensors (norm weights) go through the buffer; a write larger
	// than the buffer bypasses it when the buffer is empty.
	w := bufio.NewWriterSize(file, 1<<20)
	if _, err := w.Write(prefix); err != nil {
		return err
	}
	for _, t := range tensors {
		if _, err := w.Write(t.Data); err != nil {
			return fmt.Errorf("write tensor %s: %w", t.Name, err)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return file.Sync()
}

// Load reads the file at path. Errors name the file, and the tensor when
// one is at fault.
func (f *Format) Load(path string) (*tensor.StateDict, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer file.Close()
	h, size, err := readHeader(file, path)
	if err != nil {
		return nil, err
	}
	var sd *tensor.StateDict
	if f.opts.Mmap {
		sd, err = loadMmap(file, path, h, size)
	} else {
		sd, err = loadRead(file, path, h, size)
	}
	if err == nil && f.opts.VerifyOnLoad {
		if err = verifyLoaded(path, h, sd); err != nil {
			sd.Close()
		}
	}
	if err != nil {
		return nil, err
	}
	return sd, nil
}

// readHeader reads the header of file and returns it with the file size.
func readHeader(file *os.File, path string) (*Header, int64, error) {
	info, err := file.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("safetensors: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("safetensors: %s is not a regular file", path)
	}
	h, err := decodeHeader(file, info.Size())
	if errors.Is(err, errUnsupportedDType) {
		return nil, 0, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("safetensors: %s: %w; the file is damaged or not safetensors, so re-download or re-save it", path, err)
	}
	return h, info.Size(), nil
}

// decodeHeader reads the length field and the header of a size-byte file
// from r and parses it.
func decodeHeader(r io.ReaderAt, size int64) (*Header, error) {
	var lenBuf [8]byte
	if size < 8 {
		return nil, fmt.Errorf("%w: the file is %d bytes, shorter than the 8-byte header length field (not safetensors, or truncated)", ErrInvalidHeader, size)
	}
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("read header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("%w: header length %d is over the %d-byte limit (not safetensors, or damaged)", ErrInvalidHeader, n, MaxHeaderSize)
	}
	if int64(n) > size-8 {
		return nil, fmt.Errorf("%w: header length %d runs past the end of the %d-byte file (truncated, or not safetensors)", ErrInvalidHeader, n, size)
	}
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, 8); err != nil && n > 0 {
		return nil, fmt.Errorf("read header: %w", err)
	}
	return ParseHeader(buf, size-8-int64(n))
}

// loadRead reads the whole data section with pread into one allocation
// from tensor.StateDict.Alloc, of which every tensor is a slice.
func loadRead(file *os.File, path string, h *Header, size int64) (*tensor.StateDict, error) {
	sd := &tensor.StateDict{Tensors: make([]*tensor.Tensor, len(h.Tensors))}
	data, err := sd.Alloc(size - h.DataOffset())
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	if _, err := file.ReadAt(data, h.DataOffset()); err != nil {
		sd.Close()
		if errors.Is(err, io.EOF) {
			err = errors.New("the file ended early; it was truncated while being read")
		}
		return nil, fmt.Errorf("safetensors: read %s: %w", path, err)
	}
	for i, e := range h.Tensors {
		sd.Tensors[i] = &tensor.Tensor{Meta: e.Meta, Data: data[e.Begin:e.End:e.End]}
	}
	return sd, nil
}
