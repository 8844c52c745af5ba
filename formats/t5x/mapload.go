package t5x

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"ckptbench/formats/zarr"
	"ckptbench/tensor"
)

// maxMappings is the most chunk files one Load maps. OpenLLaMA-3B has
// 243 with T5X's 64 MiB chunks. It is a variable for tests.
var maxMappings int64 = 4096

// mapCached maps a's tensor straight from its chunk files, which the
// page cache must hold in full, or returns nil where it cannot. The tensor's
// memory is then the cached pages themselves, mapped copy-on-write: no
// byte is copied, and a write by the caller copies only the page it
// touches. This is how Load serves a warm load of an uncompressed
// checkpoint in about 0.4 s per 6.85 GB on the development VM, where
// copying the same bytes out of the page cache takes 0.65 to 2 s.
//
// It maps only where the bytes are those a read would return. Every
// chunk must be raw, in the stored dtype, exactly one chunk long, and a
// contiguous run of the tensor that starts on a page boundary. No
// checksum may be due for verification, and a load maps at most
// maxMappings chunk files, far below the kernel's vm.max_map_count
// (65530 by default), so checkpoints of many small chunks are read. Anything else, including a file that the cache does
// not hold in full, reports false with no side effect, and the caller
// reads the tensor instead.
//
// NOTE: unlike a read, the mapping follows the file. A write into a chunk
// file while the state dict is open shows in every page of the tensor
// that the caller has not written, and truncating the file makes the
// next access to its pages fault (SIGBUS). Save does neither: it
// replaces a checkpoint by renaming a new directory into place, and the
// unlinked files stay as they were while mapped. Set Options.CopyCached
// where other programs write chunk files in place.
//
// On success a.t.Data is the mapping, and the returned region is what
// the state dict must unmap on Close.
func (f *Format) mapCached(a *loadArray, budget *atomic.Int64) ([]byte, error) {
	if f.opts.CopyCached || f.opts.BufferedRead || a.codec.ID() != "raw" || a.cast || a.sums != nil {
		return nil, nil
	}
	n := a.entry.numElements() * a.out
	if n == 0 {
		return nil, nil
	}
	chunks := a.grid.numChunks()
	chunkBytes := product(a.grid.chunks) * a.stored
	if chunks > 1 && chunkBytes%int64(os.Getpagesize()) != 0 {
		return nil, nil
	}
	zeros := make([]int64, len(a.grid.chunks))
	offsets := make([]int64, chunks)
	files := make([]string, chunks)
	for i := range chunks {
		idx := a.grid.chunkIndex(i)
		origin, extent := a.grid.region(idx)
		if !slices.Equal(extent, a.grid.chunks) {
			return nil, nil // an edge chunk holds padding
		}
		off, ok := contiguousOffset(a.entry.Shape, origin, extent)
		if _, prefix := contiguousOffset(a.grid.chunks, zeros, extent); !ok || !prefix {
			return nil, nil
		}
		offsets[i] = off * a.stored
		files[i] = filepath.Join(a.dir, filepath.FromSlash(zarr.ChunkKey(idx, a.md.Separator())))
	}

	// Reserve this tensor's share of the mappings, and give it back
	// unless the tensor ends up mapped.
	if budget.Add(-chunks) < 0 {
		budget.Add(chunks)
		return nil, nil
	}
	mapped := false
	defer func() {
		if !mapped {
			budget.Add(chunks)
		}
	}()

	fds := make([]int, 0, chunks)
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, file := range files {
		fd, err := unix.Open(file, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, nil // missing or unreadable: the read path reports it
		}
		fds = append(fds, fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Size != chunkBytes || !wholeFileCached(fd, st.Size) {
			return nil, nil
		}
	}

	// Reserve the tensor's address range, then map each chunk file over
	// its part of it. Populating with read access fills the page tables
	// from the cache without breaking copy-on-write. The range becomes
	// writable afterwards.
	region, err := unix.Mmap(-1, 0, int(alignUp(n)), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, nil
	}
	base := unsafe.Pointer(&region[0])
	for i, fd := range fds {
		addr := unsafe.Add(base, offsets[i])
		_, err := unix.MmapPtr(fd, 0, addr, uintptr(chunkBytes), unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_FIXED|unix.MAP_POPULATE)
		if err != nil {
			unix.Munmap(region)
			return nil, nil
		}
	}
	if err := unix.Mprotect(region, unix.PROT_READ|unix.PROT_WRITE); err != nil {
		unix.Munmap(region)
		return nil, fmt.Errorf("t5x: tensor %q: make mapped chunks writable: %w", a.entry.Name, err)
	}
	a.t.Data = region[:n:n]
	mapped = true
	return region, nil
}

// mapTensors maps every array it can (see mapCached), on one goroutine
// per core, and returns the arrays left to read.
func (f *Format) mapTensors(sd *tensor.StateDict, arrays []*loadArray) ([]*loadArray, error) {
	regions := make([][]byte, len(arrays))
	var budget atomic.Int64
	budget.Store(maxMappings)
	err := forEach(len(arrays), runtime.NumCPU(), func(i int) error {
		var err error
		regions[i], err = f.mapCached(arrays[i], &budget)
		return err
	})
	var rest []*loadArray
	for i, a := range arrays {
		if r := regions[i]; r != nil {
			sd.OnClose(func() error { return unix.Munmap(r) })
		} else {
			rest = append(rest, a)
		}
	}
	return rest, err
}
