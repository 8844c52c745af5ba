package zarr

import (
	"fmt"
	"hash/crc32"
	"path/filepath"

	"ckptbench/formats"
	"ckptbench/tensor"
)

// castagnoli is the CRC-32C table. CRC-32C is the checksum of zarr v3's
// crc32c codec and of Orbax checkpoints; Go computes it with the CPU's
// CRC32 instruction on amd64 and arm64.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum returns the CRC-32C of a tensor's bytes.
func checksum(data []byte) uint32 { return crc32.Checksum(data, castagnoli) }

var (
	_ formats.Verifier     = (*Format)(nil)
	_ formats.LoadVerifier = (*Format)(nil)
)

// WithVerifyOnLoad returns a copy of f whose Load checks every tensor
// against the CRC-32C in the index, as Options.VerifyOnLoad does.
func (f *Format) WithVerifyOnLoad() formats.Format {
	g := *f
	g.verify = true
	return &g
}

// Verify reads every array of the checkpoint at path, one tensor at a
// time, and checks it against the dtype, shape and CRC-32C that the index
// records. It reports every damaged tensor, not only the first. Its memory
// use is bounded by the largest tensor.
func (f *Format) Verify(path string) error {
	idx, err := readIndex(path)
	if err != nil {
		return err
	}
	if !hasChecksums(idx) {
		return fmt.Errorf("zarr: %s records no checksums (the checkpoint was saved before they were added); re-save it to make it verifiable", filepath.Join(path, IndexFile))
	}
	var errs []error
	for _, e := range idx.Tensors {
		if err := verifyArray(filepath.Join(path, filepath.FromSlash(e.Path)), e); err != nil {
			errs = append(errs, &tensorError{name: e.Name, err: err})
		}
	}
	return formats.JoinProblems(errs)
}

// hasChecksums reports whether any tensor in idx has a checksum.
func hasChecksums(idx Index) bool {
	for _, e := range idx.Tensors {
		if e.CRC32C != nil {
			return true
		}
	}
	return false
}

// verifyArray reads the array in dir into a temporary buffer and checks it
// against e.
func verifyArray(dir string, e IndexEntry) error {
	if e.CRC32C == nil {
		return errNoChecksum(dir)
	}
	sd := &tensor.StateDict{}
	defer sd.Close()
	t, err := loadTensor(sd, dir, e)
	if err != nil {
		return err
	}
	return verifyTensor(dir, e, t.Data)
}

// verifyTensor compares the CRC-32C of data, the tensor read from the
// array in dir, with the one e records.
func verifyTensor(dir string, e IndexEntry, data []byte) error {
	if e.CRC32C == nil {
		return errNoChecksum(dir)
	}
	got := checksum(data)
	if got == *e.CRC32C {
		return nil
	}
	return fmt.Errorf("%s: %w: the data read has CRC-32C %08x, but the index records %08x; a chunk file was damaged or replaced, so restore the checkpoint from a copy or re-save it", chunkFiles(dir), formats.ErrChecksum, got, *e.CRC32C)
}

func errNoChecksum(dir string) error {
	return fmt.Errorf("the index records no checksum for the array in %s (it was saved before checksums were added); re-save the checkpoint to verify it", dir)
}

// chunkFiles names the chunk files of the array in dir for an error
// message: the file itself when there is one chunk.
func chunkFiles(dir string) string {
	md, err := ReadMetadata(dir)
	if err != nil {
		return "the chunk files in " + dir
	}
	g, err := newGrid(md)
	if err != nil {
		return "the chunk files in " + dir
	}
	n := int64(1)
	for _, c := range g.counts {
		n *= c
	}
	if n != 1 {
		return fmt.Sprintf("one of the %d chunk files in %s", n, dir)
	}
	return filepath.Join(dir, ChunkKey(make([]int64, len(md.Shape)), md.Separator()))
}
