package t5x

import (
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"ckptbench/formats"
	"ckptbench/formats/zarr"
)

// castagnoli is the CRC-32C table. CRC-32C is the checksum that zarr v3's
// crc32c codec and Orbax use, and Go computes it with the CPU's CRC32
// instruction on amd64 and arm64.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksumPiece is how many bytes copyChecksum and checksumRun handle at
// a time, small enough that a piece read by one pass is likely still in
// the L1 or L2 cache for the other.
const checksumPiece = 64 << 10

var (
	_ formats.Verifier     = (*Format)(nil)
	_ formats.LoadVerifier = (*Format)(nil)
)

func checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// copyChecksum copies src to dst and returns sum updated with the copied
// bytes.
func copyChecksum(dst, src []byte, sum uint32) uint32 {
	for off := 0; off < len(src); off += checksumPiece {
		end := min(off+checksumPiece, len(src))
		copy(dst[off:end], src[off:end])
		sum = crc32.Update(sum, castagnoli, dst[off:end])
	}
	return sum
}

// checksumRun calls run(dst, src) for copyBox, piece by piece, and returns
// sum updated with src's bytes. src holds elements of srcSize bytes and
// dst the same elements in dstSize bytes each.
func checksumRun(dst, src []byte, srcSize, dstSize int64, sum uint32, run func(dst, src []byte)) uint32 {
	for len(src) > 0 {
		// checksumPiece is a multiple of every element size.
		n := min(int64(len(src)), checksumPiece)
		m := n / srcSize * dstSize
		sum = crc32.Update(sum, castagnoli, src[:n])
		run(dst[:m], src[:n])
		src, dst = src[n:], dst[m:]
	}
	return sum
}

// regionChecksum returns the CRC-32C of the elements of chunk, a whole
// decoded chunk of shape chunks, that lie in its first extent elements
// along each dimension, in C order: the bytes that Array.CRC32C covers.
func regionChecksum(chunk []byte, chunks, extent []int64, size int64) uint32 {
	var sum uint32
	zeros := make([]int64, len(extent))
	copyBox(nil, extent, zeros, 0, chunk, chunks, zeros, size, extent, func(_, src []byte) {
		sum = crc32.Update(sum, castagnoli, src)
	})
	return sum
}

// hasChecksums reports whether any array of the index records checksums,
// or the index has no arrays, so that there is nothing to verify.
func (ix *Index) hasChecksums() bool {
	return len(ix.Arrays) == 0 || slices.ContainsFunc(ix.Arrays, func(a Array) bool { return a.CRC32C != nil })
}

func errNoChecksums(path string) error {
	return fmt.Errorf("t5x: %s records no checksums (the checkpoint was saved before they were added, or by another writer); re-save it with this package to make it verifiable", filepath.Join(path, IndexFile))
}

// checkChecksumGrid checks that the index entry e records a checksum for
// each chunk of the array whose .zarray, at path zarray, contains md.
// The caller has checked that the shapes match.
func checkChecksumGrid(e Array, md zarr.Metadata, zarray string) error {
	if e.CRC32C == nil {
		return fmt.Errorf("t5x: tensor %q: the index records no checksums for the array of %s (the entry was written before checksums were added, or by another writer); re-save the checkpoint to verify it", e.Name, zarray)
	}
	if !slices.Equal(md.Chunks, e.Chunks) {
		return fmt.Errorf("t5x: tensor %q: %s has chunks %v, but the index records checksums for chunks %v; the array was rewritten with other chunks or its .zarray was damaged, so restore the checkpoint from a copy or re-save it", e.Name, zarray, md.Chunks, e.Chunks)
	}
	return nil
}

// chunkError adds the tensor and the chunk file to err.
func (a *loadArray) chunkError(file string, err error) error {
	return fmt.Errorf("t5x: tensor %q: chunk %s: %w", a.entry.Name, file, err)
}

// checkChunk compares sum, the CRC-32C of chunk number linear, with the
// one the index records.
func (a *loadArray) checkChunk(linear int64, sum uint32) error {
	if want := a.sums[linear]; sum != want {
		return fmt.Errorf("%w: its data has CRC-32C %08x, but the index records %08x; the chunk file was damaged or replaced, so restore the checkpoint from a copy or re-save it", formats.ErrChecksum, sum, want)
	}
	return nil
}

// errMissingChunk is the error for a missing chunk file that the index
// shows was written, by recording the given fact.
func errMissingChunk(record string) error {
	return fmt.Errorf("the file is missing, but the index records %s, so the checkpoint lost data", record)
}

// errDecode adds the cause and the fix to a codec's error about a chunk
// file that does not decode.
func errDecode(err error) error {
	return fmt.Errorf("%w; the file is damaged, truncated or belongs to another array, so restore the checkpoint from a copy or re-save it", err)
}

// errRawSize is the error for an uncompressed chunk file of the wrong
// size.
func (a *loadArray) errRawSize(size, chunkBytes int64) error {
	return fmt.Errorf("the file is %d bytes, but an uncompressed chunk of %v %s is %d bytes; the file is truncated or belongs to another array", size, a.grid.chunks, a.md.DType, chunkBytes)
}

// errDecodedSize is the error for a compressed chunk that decodes to the
// wrong size.
func (a *loadArray) errDecodedSize(size, chunkBytes int64) error {
	return fmt.Errorf("%w: it decodes to %d bytes, but a chunk of %v %s is %d bytes; the file is truncated or belongs to another array", zarr.ErrChunkSize, size, a.grid.chunks, a.md.DType, chunkBytes)
}

// WithVerifyOnLoad returns a copy of f whose Load checks every chunk
// against the CRC-32C in the index, as Options.VerifyOnLoad does.
func (f *Format) WithVerifyOnLoad() formats.Format {
	g := *f
	g.opts.VerifyOnLoad = true
	return &g
}

// Verify reads every chunk of the checkpoint at path and checks it
// against the CRC-32C that the index records for it, without returning
// the tensors. It checks each .zarray against the index as Load does, and
// reports every damaged array and chunk, not only the first, each with
// its tensor and file. A checksum mismatch wraps formats.ErrChecksum. An
// index without checksums fails verification. Chunks are read and decoded
// through the same two stages as in Load, so memory in use stays within
// Options.ByteBudget (or one chunk, when a chunk alone exceeds it).
func (f *Format) Verify(path string) error {
	ix, err := readIndex(path)
	if err != nil {
		return err
	}
	if !ix.hasChecksums() {
		return errNoChecksums(path)
	}

	arrays := make([]*loadArray, len(ix.Arrays))
	// errs holds, for each array, the error of opening it or else one
	// slot per chunk. Each task writes only its own slot.
	errs := make([][]error, len(ix.Arrays))
	_ = forEach(len(arrays), f.opts.IOConcurrency, func(i int) error {
		a, err := f.openArray(path, ix.Arrays[i], true)
		if err != nil {
			errs[i] = []error{err}
			return nil
		}
		arrays[i] = a
		errs[i] = make([]error, a.grid.numChunks())
		return nil
	})

	p := f.newPipeline()
	for i, a := range arrays {
		if a == nil {
			continue
		}
		for linear := range a.grid.numChunks() {
			f.verifyChunk(p, a, linear, &errs[i][linear])
		}
	}
	if err := p.wait(); err != nil {
		return err
	}
	var all []error
	for _, list := range errs {
		all = append(all, list...)
	}
	return formats.JoinProblems(all)
}

// verifyChunk submits to p the check of chunk number linear of a, which
// stores its error, if any, in result. The chunk goes through a buffer
// from the byte budget: an I/O goroutine reads the file, and a CPU
// goroutine decodes it and computes its checksum.
func (f *Format) verifyChunk(p *pipeline, a *loadArray, linear int64, result *error) {
	idx := a.grid.chunkIndex(linear)
	_, extent := a.grid.region(idx)
	file := filepath.Join(a.dir, filepath.FromSlash(zarr.ChunkKey(idx, a.md.Separator())))
	chunkBytes := product(a.grid.chunks) * a.stored
	raw := a.codec.ID() == "raw"
	fail := func(err error) { *result = a.chunkError(file, err) }

	p.goIO(func([]byte) error {
		if p.failed() {
			return nil
		}
		cf, err := openChunk(file, !f.opts.BufferedRead)
		if errors.Is(err, unix.ENOENT) {
			fail(errMissingChunk("a checksum for it"))
			return nil
		}
		if err != nil {
			fail(err)
			return nil
		}
		defer cf.close()
		if raw && cf.size != chunkBytes {
			fail(a.errRawSize(cf.size, chunkBytes))
			return nil
		}
		fileBytes := alignUp(cf.size)
		size := fileBytes
		if !raw {
			size += chunkBytes
		}
		buf, err := p.pool.get(p.ctx, size)
		if err != nil {
			return nil // canceled; the first error is reported
		}
		encoded, err := cf.readAll(buf[:fileBytes])
		if err != nil {
			p.pool.put(buf)
			fail(err)
			return nil
		}
		p.goCPU(func() error {
			defer p.pool.put(buf)
			chunk := encoded
			if !raw {
				out, err := a.codec.Decode(buf[fileBytes:fileBytes+chunkBytes], encoded)
				if err != nil {
					fail(errDecode(err))
					return nil
				}
				if int64(len(out)) != chunkBytes {
					fail(a.errDecodedSize(int64(len(out)), chunkBytes))
					return nil
				}
				chunk = out
			}
			if err := a.checkChunk(linear, regionChecksum(chunk, a.grid.chunks, extent, a.stored)); err != nil {
				fail(err)
			}
			return nil
		})
		return nil
	})
}
