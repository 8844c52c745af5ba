package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"ckptbench/formats"
	"ckptbench/tensor"
)

// ChecksumsKey is the __metadata__ key under which Save records every
// tensor's dtype, shape and CRC-32C, for Verify and Load with
// Options.VerifyOnLoad. __metadata__ values must be strings, so the record
// is a JSON document in a string:
//
//	{"algorithm":"crc32c","tensors":{"<name>":{"dtype":"F16","shape":[64,64],"crc32c":"1a2b3c4d"},...}}
//
// The dtype and shape repeat the header's, so that an edit of the header
// that keeps the file valid, such as F16 turned into BF16, is caught too.
const ChecksumsKey = "checksums"

// checksumAlgorithm is the only value of "algorithm" this package writes
// and reads.
const checksumAlgorithm = "crc32c"

// castagnoli is the CRC-32C table; Go computes CRC-32C with the CPU's
// CRC32 instruction on amd64 and arm64.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksumRecord is the JSON document stored under ChecksumsKey.
type checksumRecord struct {
	Algorithm string                    `json:"algorithm"`
	Tensors   map[string]tensorChecksum `json:"tensors"`
}

type tensorChecksum struct {
	DType  string  `json:"dtype"`
	Shape  []int64 `json:"shape"`
	CRC32C string  `json:"crc32c"` // 8 lowercase hex digits
}

var (
	_ formats.Verifier     = (*Format)(nil)
	_ formats.LoadVerifier = (*Format)(nil)
)

// WithVerifyOnLoad returns a copy of f whose Load checks every tensor
// against the checksums in __metadata__, as Options.VerifyOnLoad does.
func (f *Format) WithVerifyOnLoad() formats.Format {
	g := *f
	g.opts.VerifyOnLoad = true
	return &g
}

// encodeChecksums computes the CRC-32C of every tensor, one goroutine per
// core, and returns the value to store under ChecksumsKey.
func encodeChecksums(tensors []*tensor.Tensor) (string, error) {
	sums := parallelChecksums(tensors)
	rec := checksumRecord{Algorithm: checksumAlgorithm, Tensors: make(map[string]tensorChecksum, len(tensors))}
	for i, t := range tensors {
		name, ok := dtypeNames[t.DType]
		if !ok {
			return "", fmt.Errorf("tensor %q: dtype %s has no safetensors equivalent", t.Name, t.DType)
		}
		rec.Tensors[t.Name] = tensorChecksum{DType: name, Shape: slices.Clone(t.Shape), CRC32C: fmt.Sprintf("%08x", sums[i])}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// parallelChecksums returns the CRC-32C of each tensor's Data.
func parallelChecksums(tensors []*tensor.Tensor) []uint32 {
	sums := make([]uint32, len(tensors))
	next := make(chan int, len(tensors))
	for i := range tensors {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(tensors)) {
		wg.Go(func() {
			for i := range next {
				sums[i] = crc32.Checksum(tensors[i].Data, castagnoli)
			}
		})
	}
	wg.Wait()
	return sums
}

// decodeChecksums parses the checksum record of the file at path and
// checks that it lists exactly the tensors of h, with their dtypes and
// shapes.
func decodeChecksums(path string, h *Header) (map[string]uint32, error) {
	v, ok := h.Metadata[ChecksumsKey]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s records no checksums (no %q key in __metadata__; files written by other tools, or before checksums were added, have none); re-save it with this package to make it verifiable", path, ChecksumsKey)
	}
	var rec checksumRecord
	if err := json.Unmarshal([]byte(v), &rec); err != nil {
		return nil, fmt.Errorf("safetensors: %s: __metadata__ %q is not a valid checksum record: %w; the header is damaged, so restore the file from a copy or re-save it", path, ChecksumsKey, err)
	}
	if rec.Algorithm != checksumAlgorithm {
		return nil, fmt.Errorf("safetensors: %s: __metadata__ %q uses checksum algorithm %q; this package verifies only %q", path, ChecksumsKey, rec.Algorithm, checksumAlgorithm)
	}
	sums := make(map[string]uint32, len(h.Tensors))
	var errs []error
	for _, e := range h.Tensors {
		c, ok := rec.Tensors[e.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("safetensors: %s: tensor %q has no checksum in __metadata__ %q; the header was edited, so restore the file from a copy or re-save it", path, e.Name, ChecksumsKey))
			continue
		}
		sum, err := strconv.ParseUint(c.CRC32C, 16, 32)
		if err != nil || len(c.CRC32C) != 8 {
			errs = append(errs, fmt.Errorf("safetensors: %s: tensor %q: checksum %q in __metadata__ is not 8 hex digits; the header is damaged, so restore the file from a copy or re-save it", path, e.Name, c.CRC32C))
			continue
		}
		if dtype := dtypeNames[e.DType]; c.DType != dtype || !slices.Equal(c.Shape, e.Shape) {
			errs = append(errs, fmt.Errorf("safetensors: %s: tensor %q: %w: the header says %s %v, but the checksum record saved with it says %s %v; the header was edited or damaged, so restore the file from a copy or re-save it", path, e.Name, formats.ErrChecksum, dtype, e.Shape, c.DType, c.Shape))
			continue
		}
		sums[e.Name] = uint32(sum)
	}
	for name := range rec.Tensors {
		if !slices.ContainsFunc(h.Tensors, func(e Entry) bool { return e.Name == name }) {
			errs = append(errs, fmt.Errorf("safetensors: %s: tensor %q is in the checksum record but not in the header; the header was edited, so restore the file from a copy or re-save it", path, name))
		}
	}
	return sums, errors.Join(errs...)
}

// mismatch returns the error for tensor e of the file at path, whose
// bytes have CRC-32C got instead of want.
func mismatch(path string, h *Header, e Entry, got, want uint32) error {
	begin := h.DataOffset() + e.Begin
	return fmt.Errorf("safetensors: %s: tensor %q: %w: bytes [%d, %d) of the file have CRC-32C %08x, but __metadata__ records %08x; the file is damaged, so restore it from a copy or re-save it", path, e.Name, formats.ErrChecksum, begin, begin+e.End-e.Begin, got, want)
}

// verifyLoaded checks the tensors of sd, just loaded from path with
// header h, against the checksums in h.
func verifyLoaded(path string, h *Header, sd *tensor.StateDict) error {
	want, err := decodeChecksums(path, h)
	if err != nil {
		return err
	}
	got := parallelChecksums(sd.Tensors)
	var errs []error
	for i, e := range h.Tensors {
		if got[i] != want[e.Name] {
			errs = append(errs, mismatch(path, h, e, got[i], want[e.Name]))
		}
	}
	return formats.JoinProblems(errs)
}

// verifyBufferSize is how much of the data section Verify reads at once.
const verifyBufferSize = 4 << 20

// Verify checks the file at path: the header's offsets against the file
// size, the checksum record against the header, and every tensor's bytes
// against its CRC-32C. It reads the data section once, sequentially, with
// a buffer of a few MiB, and reports every damaged tensor.
func (f *Format) Verify(path string) error {
	file, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	defer file.Close()
	h, _, err := readHeader(file, path)
	if err != nil {
		return err
	}
	want, err := decodeChecksums(path, h)
	if err != nil {
		return err
	}
	buf := make([]byte, verifyBufferSize)
	var errs []error
	for _, e := range h.Tensors {
		sum, err := checksumRange(file, buf, h.DataOffset()+e.Begin, e.End-e.Begin)
		if err != nil {
			return fmt.Errorf("safetensors: read %s: tensor %q: %w", path, e.Name, err)
		}
		if sum != want[e.Name] {
			errs = append(errs, mismatch(path, h, e, sum, want[e.Name]))
		}
	}
	return formats.JoinProblems(errs)
}

// checksumRange returns the CRC-32C of n bytes of r from offset off,
// read through buf.
func checksumRange(r io.ReaderAt, buf []byte, off, n int64) (uint32, error) {
	var sum uint32
	for n > 0 {
		chunk := buf[:min(n, int64(len(buf)))]
		if _, err := r.ReadAt(chunk, off); err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the file ended early; it was truncated while being read")
			}
			return 0, err
		}
		sum = crc32.Update(sum, castagnoli, chunk)
		off += int64(len(chunk))
		n -= int64(len(chunk))
	}
	return sum, nil
}
