package t5x

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync/atomic"

	"ckptbench/formats/zarr"
	"ckptbench/iox"
	"ckptbench/tensor"
)

// saveArray is one tensor on its way to disk.
type saveArray struct {
	t        *tensor.Tensor
	entry    Array
	dir      string
	md       zarr.Metadata
	grid     grid
	itemSize int64
	// sums receives the CRC-32C of each chunk, by linear chunk number,
	// from the task that first reads the chunk's bytes.
	sums []uint32
	// pending counts the array's files (chunks and .zarray) not yet
	// synced; the one that brings it to zero syncs the array directory.
	pending atomic.Int64
}

// finish marks one of the array's files durable and syncs the array's
// directory after the last one.
func (a *saveArray) finish() error {
	if a.pending.Add(-1) != 0 {
		return nil
	}
	if err := iox.SyncDir(a.dir); err != nil {
		return fmt.Errorf("t5x: tensor %q: %w", a.t.Name, err)
	}
	return nil
}

// Save writes sd to dst as a T5X-style checkpoint directory, laid out as
// the package comment describes. Everything is written under
// iox.TempPath(dst). The .zarray files and the chunks of every tensor go
// first, concurrently, each file synced, then every directory is synced
// and the index, with each chunk's CRC-32C, written last. iox.Commit then
// publishes the directory at dst. If any step fails, the temporary
// directory is removed and dst is left as it was. Save rejects a dst
// that holds anything but a T5X checkpoint or an empty directory, which
// the commit would delete.
func (f *Format) Save(dst string, sd *tensor.StateDict) (err error) {
	if err := sd.Validate(); err != nil {
		return fmt.Errorf("t5x: save %s: %w", dst, err)
	}
	if err := checkReplaceable(dst); err != nil {
		return fmt.Errorf("t5x: save %s: %w", dst, err)
	}
	ix := &Index{Version: IndexVersion, EveryChunkStored: true}
	arrays := make([]*saveArray, len(sd.Tensors))
	for i, t := range sd.Tensors {
		a, err := f.planArray(t)
		if err != nil {
			return fmt.Errorf("t5x: save %s: %w", dst, err)
		}
		arrays[i] = a
		ix.Arrays = append(ix.Arrays, a.entry)
	}
	// Encoding the index now rejects names that cannot form the
	// parameter tree before anything is written. The checksums come later.
	if _, err := ix.MarshalBinary(); err != nil {
		return fmt.Errorf("t5x: save %s: %w", dst, err)
	}

	tmp := iox.TempPath(dst)
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("t5x: save: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	parents := map[string]bool{}
	for _, a := range arrays {
		a.dir = filepath.Join(tmp, filepath.FromSlash(a.entry.Path))
		if err := os.MkdirAll(a.dir, 0o755); err != nil {
			return fmt.Errorf("t5x: save: tensor %q: %w", a.t.Name, err)
		}
		for dir := path.Dir(a.entry.Path); dir != "."; dir = path.Dir(dir) {
			parents[dir] = true
		}
	}

	p := f.newPipeline()
	f.writeArrays(p, arrays, parents, tmp)
	if err := p.wait(); err != nil {
		return err
	}

	for i, a := range arrays {
		ix.Arrays[i].CRC32C = a.sums
	}
	index, err := ix.MarshalBinary()
	if err != nil {
		return fmt.Errorf("t5x: save %s: %w", dst, err)
	}
	if err := iox.WriteFileSync(filepath.Join(tmp, IndexFile), index); err != nil {
		return fmt.Errorf("t5x: save: %w", err)
	}
	if err := iox.SyncDir(tmp); err != nil {
		return fmt.Errorf("t5x: save: %w", err)
	}
	if err := iox.Commit(tmp, dst); err != nil {
		return fmt.Errorf("t5x: save: %w", err)
	}
	return nil
}

// planArray returns the array that will hold t: T5X's chunk shape, the
// zarr metadata and the index entry.
func (f *Format) planArray(t *tensor.Tensor) (*saveArray, error) {
	p, err := zarr.ArrayPath(t.Name)
	if err != nil {
		return nil, err
	}
	if err := checkName(t.Name); err != nil {
		return nil, err
	}
	chunks := ChunkShape(t.Shape, t.DType.Size(), f.opts.ChunkBytes)
	md, err := zarr.NewMetadata(t.DType, t.Shape, chunks, f.codec)
	if err != nil {
		return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	a := &saveArray{
		t:        t,
		md:       md,
		grid:     newGrid(md.Shape, md.Chunks),
		itemSize: int64(t.DType.Size()),
		entry: Array{
			Name:       t.Name,
			Path:       p,
			DType:      t.DType,
			Shape:      slices.Clone(md.Shape),
			Chunks:     slices.Clone(md.Chunks),
			Compressor: f.codec.ID(),
		},
	}
	a.sums = make([]uint32, a.grid.numChunks())
	a.pending.Store(a.grid.numChunks() + 1)
	return a, nil
}

// writeArrays submits every file of the checkpoint but the index to p:
// the .zarray files and the directory syncs first, since they are small,
// then the chunks in tensor order.
func (f *Format) writeArrays(p *pipeline, arrays []*saveArray, parents map[string]bool, tmp string) {
	for _, a := range arrays {
		p.goIO(func([]byte) error {
			if p.failed() {
				return nil
			}
			if err := zarr.WriteMetadata(a.dir, a.md); err != nil {
				return fmt.Errorf("t5x: tensor %q: %w", a.t.Name, err)
			}
			return a.finish()
		})
	}
	for dir := range parents {
		p.goIO(func([]byte) error {
			if p.failed() {
				return nil
			}
			return iox.SyncDir(filepath.Join(tmp, filepath.FromSlash(dir)))
		})
	}
	for _, a := range arrays {
		for i := range a.grid.numChunks() {
			if p.failed() {
				return
			}
			f.writeChunk(p, a, i)
		}
	}
}

// writeChunk submits chunk number linear of a. A chunk that is a
// contiguous run of the tensor's memory is written from there. Any other
// is first gathered into a buffer on a CPU goroutine, which also encodes
// compressed chunks into a buffer. The chunk's bytes count against the
// byte budget until its file is synced. The goroutine that first reads
// the chunk's bytes computes its CRC-32C into a.sums: the CPU goroutine
// while it gathers or before it encodes, or else the I/O goroutine as
// it writes.
func (f *Format) writeChunk(p *pipeline, a *saveArray, linear int64) {
	idx := a.grid.chunkIndex(linear)
	origin, extent := a.grid.region(idx)
	file := filepath.Join(a.dir, zarr.ChunkKey(idx, a.md.Separator()))
	chunkElems := product(a.grid.chunks)
	n := chunkElems * a.itemSize

	var src []byte
	if off, ok := contiguousOffset(a.t.Shape, origin, extent); ok && slices.Equal(extent, a.grid.chunks) {
		src = a.t.Data[off*a.itemSize : off*a.itemSize+n]
	}
	direct := !f.opts.BufferedWrite
	raw := f.codec.ID() == "raw"
	gather := src == nil || (raw && direct && !aligned(src))
	var gatherBytes, bufBytes int64
	if gather {
		gatherBytes = alignUp(n)
		bufBytes = gatherBytes
	}
	if !raw {
		bufBytes += alignUp(encodeBound(n))
	}

	var buf []byte
	if bufBytes == 0 {
		if err := p.pool.reserve(p.ctx, n); err != nil {
			return // canceled: the error that canceled p is reported
		}
	} else {
		var err error
		if buf, err = p.pool.get(p.ctx, bufBytes); err != nil {
			return
		}
	}
	release := func() {
		if buf == nil {
			p.pool.unreserve(n)
		} else {
			p.pool.put(buf)
		}
	}

	data := src
	// sum, when set, makes the I/O goroutine compute the chunk's checksum
	// as it writes the chunk.
	var sum *uint32
	write := func(tail []byte) error {
		defer release()
		if p.failed() {
			return nil
		}
		if f.opts.testHookWrite != nil {
			if err := f.opts.testHookWrite(file); err != nil {
				return fmt.Errorf("t5x: tensor %q: %w", a.t.Name, err)
			}
		}
		if err := writeChunkFile(file, data, direct, tail, sum); err != nil {
			return fmt.Errorf("t5x: tensor %q: %w", a.t.Name, err)
		}
		return a.finish()
	}
	if !gather && raw {
		sum = &a.sums[linear]
		p.goIO(write)
		return
	}
	p.goCPU(func() error {
		if p.failed() {
			release()
			return nil
		}
		if gather {
			g := buf[:n]
			if !slices.Equal(extent, a.grid.chunks) {
				clear(g) // an edge chunk's part outside the array
			}
			// copyBox visits the runs in C order, so the checksum covers
			// the chunk's elements inside the array in the order that
			// Array.CRC32C defines.
			var crc uint32
			copyBox(g, a.grid.chunks, make([]int64, len(extent)), a.itemSize,
				a.t.Data, a.t.Shape, origin, a.itemSize, extent,
				func(dst, src []byte) { crc = copyChecksum(dst, src, crc) })
			a.sums[linear] = crc
			data = g
		} else {
			a.sums[linear] = checksum(data)
		}
		if !raw {
			out, err := f.encoder.encode(buf[gatherBytes:gatherBytes], data)
			if err != nil {
				release()
				return fmt.Errorf("t5x: tensor %q: encode chunk %s: %w", a.t.Name, file, err)
			}
			data = out
		}
		p.goIO(write)
		return nil
	})
}

// encodeBound is the most bytes gzip or zstd output of n input bytes can
// take: incompressible data is stored with a few bytes of framing per
// block. The codecs grow the buffer on the Go heap if it were ever short.
func encodeBound(n int64) int64 { return n + n/64 + 4096 }
