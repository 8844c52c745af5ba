package t5x

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"ckptbench/formats/zarr"
	"ckptbench/tensor"
)

// loadArray is one tensor on its way from disk.
type loadArray struct {
	entry  Array
	dir    string
	md     zarr.Metadata
	codec  zarr.Codec
	grid   grid
	stored int64 // bytes per element on disk
	out    int64 // bytes per element in memory
	// run copies runs of elements from a chunk into the tensor, converting
	// the dtype when RestoreDType requests a cast.
	run  func(dst, src []byte)
	cast bool
	fill []byte // one element of the fill value, in the tensor's dtype
	t    *tensor.Tensor
	// sums is the index's CRC-32C of each chunk when the chunks are to be
	// verified as they are read, else nil.
	sums []uint32
	// mismatches contains, when sums is set, the checksum error of each
	// chunk by linear chunk number. Each task writes only its own entry.
	mismatches []error
}

// Load reads the checkpoint directory at src. The index gives the tensors,
// their order and the array of each. Each array's .zarray gives the
// chunking and compressor actually used, whatever the index recorded, and
// must agree with the index on shape and dtype.
//
// A tensor whose chunk files are uncompressed and wholly in the page
// cache is mapped from them, copy-on-write, instead of copied (see
// Options.CopyCached). All other tensors live in one block of memory
// from StateDict.Alloc, each starting on a block boundary, which the
// state dict releases on Close. Their chunks are read concurrently. An uncompressed chunk that is a
// contiguous run of its tensor is read straight into the tensor's memory,
// with O_DIRECT when aligned. A compressed one is decoded straight into
// it. Any other chunk goes through a buffer and is copied into place.
//
// A missing chunk file is a chunk of the array's fill value, as in zarr
// and TensorStore, unless the index says every chunk was stored (as
// Save records), in which case it is an error.
//
// With Options.VerifyOnLoad, each chunk is checked against the CRC-32C
// that the index records for it as soon as it is read, on the goroutine
// that read or decoded it. Once every chunk is read, a mismatch fails the
// load with an error for each damaged chunk, in tensor order, that wraps
// formats.ErrChecksum and names the tensor and the chunk file. An index
// without checksums then fails to load.
func (f *Format) Load(src string) (*tensor.StateDict, error) {
	ix, err := readIndex(src)
	if err != nil {
		return nil, err
	}
	verify := f.opts.VerifyOnLoad
	if verify && !ix.hasChecksums() {
		return nil, errNoChecksums(src)
	}

	arrays := make([]*loadArray, len(ix.Arrays))
	err = forEach(len(arrays), f.opts.IOConcurrency, func(i int) error {
		a, err := f.openArray(src, ix.Arrays[i], verify)
		arrays[i] = a
		return err
	})
	if err != nil {
		return nil, err
	}

	sd := &tensor.StateDict{Tensors: make([]*tensor.Tensor, len(arrays))}
	for i, a := range arrays {
		a.t = &tensor.Tensor{Meta: tensor.Meta{Name: a.entry.Name, DType: f.outDType(a.entry.DType), Shape: slices.Clone(a.entry.Shape)}}
		sd.Tensors[i] = a.t
	}
	toRead, err := f.mapTensors(sd, arrays)
	if err != nil {
		sd.Close()
		return nil, err
	}
	var total int64
	for _, a := range toRead {
		total += alignUp(a.entry.numElements() * a.out)
	}
	mem, err := sd.Alloc(total)
	if err != nil {
		sd.Close()
		return nil, fmt.Errorf("t5x: load %s: %w", src, err)
	}
	var off int64
	for _, a := range toRead {
		n := a.entry.numElements() * a.out
		a.t.Data = mem[off : off+n : off+n]
		off += alignUp(n)
	}

	p := f.newPipeline()
	for _, a := range toRead {
		for i := range a.grid.numChunks() {
			if p.failed() {
				break
			}
			f.readChunk(p, a, i, ix.EveryChunkStored)
		}
	}
	err = p.wait()
	var errs []error
	for _, a := range arrays {
		errs = append(errs, a.mismatches...)
	}
	if err := errors.Join(append([]error{err}, errs...)...); err != nil {
		sd.Close()
		return nil, err
	}
	return sd, nil
}

// readIndex reads and parses the index of the checkpoint at src.
func readIndex(src string) (*Index, error) {
	indexPath := filepath.Join(src, IndexFile)
	b, err := os.ReadFile(indexPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("t5x: %s is missing, so %s is not a complete t5x checkpoint (a save that did not finish leaves no index)", indexPath, src)
	}
	if err != nil {
		return nil, fmt.Errorf("t5x: read index: %w", err)
	}
	ix, err := ParseIndex(b)
	if err != nil {
		return nil, fmt.Errorf("t5x: %s: %w", indexPath, err)
	}
	return ix, nil
}

func (a Array) numElements() int64 { return tensor.Meta{DType: a.DType, Shape: a.Shape}.NumElements() }

// outDType returns the dtype a tensor stored as d has after loading.
func (f *Format) outDType(d tensor.DType) tensor.DType {
	if f.opts.RestoreDType != tensor.Invalid && isFloat(d) {
		return f.opts.RestoreDType
	}
	return d
}

// openArray reads the .zarray of e's array and checks it against e. With
// verify set, e must record a checksum for each chunk of the .zarray's
// chunk grid.
func (f *Format) openArray(root string, e Array, verify bool) (*loadArray, error) {
	dir := filepath.Join(root, filepath.FromSlash(e.Path))
	md, err := zarr.ReadMetadata(dir)
	if err != nil {
		return nil, fmt.Errorf("t5x: tensor %q: %w", e.Name, err)
	}
	zarray := filepath.Join(dir, zarr.MetadataFile)
	stored, err := md.TensorDType()
	if err != nil {
		return nil, fmt.Errorf("t5x: tensor %q: %s: %w", e.Name, zarray, err)
	}
	if !slices.Equal(md.Shape, e.Shape) {
		return nil, fmt.Errorf("t5x: tensor %q: %s has shape %v, but the index records %v; the checkpoint is inconsistent, so restore it from a copy or re-save it", e.Name, zarray, md.Shape, e.Shape)
	}
	if stored != e.DType {
		return nil, fmt.Errorf("t5x: tensor %q: %s stores %s, but the index records %s; the checkpoint is inconsistent, so restore it from a copy or re-save it", e.Name, zarray, stored, e.DType)
	}

	codec, err := zarr.CodecFromMetadata(md.Compressor)
	if err != nil {
		return nil, fmt.Errorf("t5x: tensor %q: array %s: %w; re-save the array with gzip, zstd or no compressor", e.Name, dir, err)
	}
	fill, err := md.FillBytes()
	if err != nil {
		return nil, fmt.Errorf("t5x: tensor %q: array %s: %w", e.Name, dir, err)
	}

	out := f.outDType(stored)
	a := &loadArray{
		entry:  e,
		dir:    dir,
		md:     md,
		codec:  codec,
		grid:   newGrid(md.Shape, md.Chunks),
		stored: int64(stored.Size()),
		out:    int64(out.Size()),
		run:    copyBytes,
		fill:   fill,
	}
	if out != stored {
		a.cast = true
		a.run = converter(stored, out)
		a.fill = make([]byte, out.Size())
		a.run(a.fill, fill)
	}
	if verify {
		if err := checkChecksumGrid(e, md, zarray); err != nil {
			return nil, err
		}
		a.sums = e.CRC32C
		a.mismatches = make([]error, a.grid.numChunks())
	}
	return a, nil
}

// readChunk submits the read of chunk number linear of a to p.
func (f *Format) readChunk(p *pipeline, a *loadArray, linear int64, requireChunks bool) {
	idx := a.grid.chunkIndex(linear)
	origin, extent := a.grid.region(idx)
	file := filepath.Join(a.dir, filepath.FromSlash(zarr.ChunkKey(idx, a.md.Separator())))
	chunkBytes := product(a.grid.chunks) * a.stored
	validBytes := product(extent) * a.stored
	direct := !f.opts.BufferedRead
	raw := a.codec.ID() == "raw"
	full := slices.Equal(extent, a.grid.chunks)
	zeros := make([]int64, len(extent))

	// dst is the chunk's place in the tensor when that is one run of
	// memory in the stored dtype.
	var dst []byte
	if off, ok := contiguousOffset(a.t.Shape, origin, extent); ok && !a.cast {
		dst = a.t.Data[off*a.out : off*a.out+validBytes]
	}
	_, prefix := contiguousOffset(a.grid.chunks, zeros, extent)
	readInto := raw && dst != nil && prefix && (!direct || aligned(dst))
	decodeInto := !raw && dst != nil && full

	fail := func(err error) error { return a.chunkError(file, err) }
	// check compares sum, the CRC-32C of the chunk's data, with the
	// index's, and is called only when the load verifies chunks. A
	// mismatch does not stop the load, so that Load reports every
	// damaged chunk in tensor order, whichever is read first.
	check := func(sum uint32) error {
		if err := a.checkChunk(linear, sum); err != nil {
			a.mismatches[linear] = fail(err)
		}
		return nil
	}
	// open opens the chunk file; a missing one is filled in place and
	// returns ok=false.
	open := func() (chunkFile, bool, error) {
		cf, err := openChunk(file, direct)
		if errors.Is(err, unix.ENOENT) {
			if requireChunks {
				return cf, false, fail(errMissingChunk("that every chunk was stored"))
			}
			if a.sums != nil {
				return cf, false, fail(errMissingChunk("a checksum for it"))
			}
			copyBox(a.t.Data, a.t.Shape, origin, a.out, nil, extent, zeros, 0, extent,
				func(dst, _ []byte) { fillElements(dst, a.fill) })
			return cf, false, nil
		}
		if err != nil {
			return cf, false, fail(err)
		}
		if raw && cf.size != chunkBytes {
			cf.close()
			return cf, false, fail(a.errRawSize(cf.size, chunkBytes))
		}
		return cf, true, nil
	}

	// Every I/O task takes its share of the byte budget itself. Were this
	// goroutine to take it before handing a task over, it could hold the
	// budget while waiting for an I/O goroutine that waits for the budget.
	if readInto {
		p.goIO(func(tail []byte) error {
			if err := p.pool.reserve(p.ctx, validBytes); err != nil {
				return nil // canceled; the first error is reported
			}
			defer p.pool.unreserve(validBytes)
			if p.failed() {
				return nil
			}
			cf, ok, err := open()
			if !ok {
				return err
			}
			defer cf.close()
			if err := cf.readInto(dst, tail); err != nil {
				return fail(err)
			}
			if a.sums != nil {
				return check(checksum(dst))
			}
			return nil
		})
		return
	}

	p.goIO(func(tail []byte) error {
		if p.failed() {
			return nil
		}
		cf, ok, err := open()
		if !ok {
			return err
		}
		defer cf.close()
		// One buffer: the file, then (for a compressed chunk that cannot
		// be decoded in place) the decoded chunk.
		fileBytes := alignUp(cf.size)
		size := fileBytes
		if !raw && !decodeInto {
			size += chunkBytes
		}
		buf, err := p.pool.get(p.ctx, size)
		if err != nil {
			return nil // canceled; the first error is reported
		}
		encoded, err := cf.readAll(buf[:fileBytes])
		if err != nil {
			p.pool.put(buf)
			return fail(err)
		}
		p.goCPU(func() error {
			defer p.pool.put(buf)
			if p.failed() {
				return nil
			}
			chunk := encoded
			if !raw {
				target := dst
				if !decodeInto {
					target = buf[fileBytes : fileBytes+chunkBytes]
				}
				out, err := a.codec.Decode(target, encoded)
				if err != nil {
					return fail(errDecode(err))
				}
				if int64(len(out)) != chunkBytes {
					return fail(a.errDecodedSize(int64(len(out)), chunkBytes))
				}
				if decodeInto {
					if a.sums != nil {
						return check(checksum(dst))
					}
					return nil
				}
				chunk = out
			}
			if a.sums == nil {
				copyBox(a.t.Data, a.t.Shape, origin, a.out, chunk, a.grid.chunks, zeros, a.stored, extent, a.run)
				return nil
			}
			// copyBox visits the chunk's elements inside the array in C
			// order, the order the index's checksum covers.
			var sum uint32
			copyBox(a.t.Data, a.t.Shape, origin, a.out, chunk, a.grid.chunks, zeros, a.stored, extent,
				func(dst, src []byte) { sum = checksumRun(dst, src, a.stored, a.out, sum, a.run) })
			return check(sum)
		})
		return nil
	})
}

// fillElements repeats the element elem over dst.
func fillElements(dst, elem []byte) {
	if len(dst) == 0 {
		return
	}
	n := copy(dst, elem)
	for n < len(dst) {
		n += copy(dst[n:], dst[:n])
	}
}

// forEach calls fn(0..n-1) on at most limit goroutines and returns the
// first error; after an error, calls not yet started are skipped.
func forEach(n, limit int, fn func(int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, limit)
	for i := range n {
		mu.Lock()
		stop := first != nil
		mu.Unlock()
		if stop {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}
