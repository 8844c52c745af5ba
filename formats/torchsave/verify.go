package torchsave

import (
	"archive/zip"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"

	"ckptbench/formats"
	"ckptbench/tensor"
)

// Options configures a Format.
type Options struct {
	// VerifyOnLoad makes Load check the archive's structure in Go before
	// libtorch reads it, and every loaded tensor against the CRC-32 that
	// the zip directory records for its record (see Verify).
	VerifyOnLoad bool
}

// NewWithOptions returns the torchsave format with the given options.
func NewWithOptions(opts Options) Format { return Format{opts: opts} }

var (
	_ formats.Verifier     = Format{}
	_ formats.LoadVerifier = Format{}
)

// WithVerifyOnLoad returns a copy of f with Options.VerifyOnLoad set.
func (f Format) WithVerifyOnLoad() formats.Format {
	f.opts.VerifyOnLoad = true
	return f
}

// Verify checks the archive at path in pure Go, without libtorch: the zip
// directory, the pickled module in data.pkl, each tensor's record size
// against its dtype and shape, and every record's bytes against the
// CRC-32 that the zip directory stores for it. It reports every damaged
// record, naming the tensors stored in it.
func (f Format) Verify(path string) error {
	a, err := readArchive(path)
	if err != nil {
		return err
	}
	defer a.zip.Close()

	var errs []error
	names := make(map[*zip.File][]string) // the tensors stored in each record
	for _, t := range a.tensors {
		rec, err := a.record(t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		names[rec] = append(names[rec], t.name)
	}
	buf := make([]byte, 4<<20)
	for _, rec := range a.zip.File {
		err := checkRecord(rec, buf)
		switch {
		case err == nil:
		case len(names[rec]) > 0:
			errs = append(errs, fmt.Errorf("torchsave: %s: tensor %q: record %s: %w; the file is damaged, so restore it from a copy or re-save it", path, strings.Join(names[rec], `", "`), rec.Name, err))
		default:
			errs = append(errs, fmt.Errorf("torchsave: %s: record %s: %w; the file is damaged, so restore it from a copy or re-save it", path, rec.Name, err))
		}
	}
	return formats.JoinProblems(errs)
}

// checkRecord reads the record through archive/zip, which compares its
// bytes with the CRC-32 in the zip directory at the end.
func checkRecord(rec *zip.File, buf []byte) error {
	r, err := rec.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		_, err := r.Read(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return checksumError(err)
		}
	}
}

// checkLoaded compares sd, the tensors libtorch loaded from the archive a
// describes, with it: the same names, dtypes and shapes, and bytes that
// match each record's CRC-32. A tensor that is not its whole storage is
// checked by reading its record again.
func checkLoaded(a *archive, sd *tensor.StateDict) error {
	if len(sd.Tensors) != len(a.tensors) {
		return fmt.Errorf("torchsave: %s: libtorch loaded %d tensors, but data.pkl lists %d", a.path, len(sd.Tensors), len(a.tensors))
	}
	recs := make([]*zip.File, len(a.tensors))
	for i, t := range a.tensors {
		got := sd.Tensors[i]
		if got.Name != t.name || got.DType != t.Storage.DType || !slices.Equal(got.Shape, t.Shape) {
			return fmt.Errorf("torchsave: %s: libtorch loaded tensor %q as %s %v, but data.pkl lists tensor %q as %s %v at that position", a.path, got.Name, got.DType, got.Shape, t.name, t.Storage.DType, t.Shape)
		}
		rec, err := a.record(t)
		if err != nil {
			return err
		}
		recs[i] = rec
	}

	errs := make([]error, len(a.tensors))
	forEachParallel(len(a.tensors), func(i int) {
		t, rec := a.tensors[i], recs[i]
		var err error
		if t.coversStorage() {
			if sum := crc32.ChecksumIEEE(sd.Tensors[i].Data); sum != rec.CRC32 {
				err = fmt.Errorf("%w: the loaded bytes have CRC-32 %08x, but the zip directory records %08x", formats.ErrChecksum, sum, rec.CRC32)
			}
		} else {
			err = checkRecord(rec, make([]byte, 1<<20))
		}
		if err != nil {
			errs[i] = fmt.Errorf("torchsave: %s: tensor %q: record %s: %w; the file is damaged, so restore it from a copy or re-save it", a.path, t.name, rec.Name, err)
		}
	})
	return formats.JoinProblems(errs)
}

// forEachParallel calls fn(i) for i in [0, n), one goroutine per core.
func forEachParallel(n int, fn func(i int)) {
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	wg.Wait()
}
