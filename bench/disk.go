package bench

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"ckptbench/tensor"
)

// diskBlock is the size of each O_DIRECT request: large enough that the
// per-request cost vanishes, and a multiple of every logical block size.
const diskBlock = 4 << 20

// Disk is the physical reference: it writes and reads the same number of
// bytes as the model, as one file, with O_DIRECT and block-aligned buffers,
// using Streams goroutines with one request in flight each. Streams=1 is
// a single sequential stream; 16 keeps the queue deep, which virtual
// disks often need to reach their bandwidth. Warm loads read the file
// through the page cache instead, the limit for a warm load.
type Disk struct {
	Streams int
	// Buffered makes Load read through the page cache (for warm loads).
	Buffered bool
}

func (d Disk) Name() string  { return "disk" }
func (d Disk) Codec() string { return "" }

// Save writes sd.NumBytes() bytes, rounded up to a whole block, and fsyncs.
func (d Disk) Save(path string, sd *tensor.StateDict) error {
	n := roundUp(sd.NumBytes(), 4096)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_DIRECT, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	err = d.parallel(n, func(off, size int64, buf []byte) error {
		_, err := f.WriteAt(buf[:size], off)
		return err
	})
	if err != nil {
		return fmt.Errorf("disk reference: write %s: %w", path, err)
	}
	return f.Sync()
}

// Load reads the whole file into one page-aligned buffer and returns it as
// a single uint8 tensor named "disk".
func (d Disk) Load(path string) (*tensor.StateDict, error) {
	flags := os.O_RDONLY
	if !d.Buffered {
		flags |= unix.O_DIRECT
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	n := info.Size()
	sd := &tensor.StateDict{}
	mem, err := sd.Alloc(n)
	if err != nil {
		return nil, fmt.Errorf("disk reference: %w", err)
	}
	err = d.parallel(n, func(off, size int64, _ []byte) error {
		_, err := f.ReadAt(mem[off:off+size], off)
		return err
	})
	if err != nil {
		sd.Close()
		return nil, fmt.Errorf("disk reference: read %s: %w", path, err)
	}
	sd.Add(&tensor.Tensor{Meta: tensor.Meta{Name: "disk", DType: tensor.Uint8, Shape: []int64{n}}, Data: mem})
	return sd, nil
}

// parallel splits [0, n) into Streams contiguous regions and walks each in
// diskBlock steps on its own goroutine, passing each an aligned buffer.
func (d Disk) parallel(n int64, op func(off, size int64, buf []byte) error) error {
	streams := max(d.Streams, 1)
	per := roundUp((n+int64(streams)-1)/int64(streams), diskBlock)
	var wg sync.WaitGroup
	errs := make([]error, streams)
	for s := range streams {
		start, end := int64(s)*per, min(int64(s+1)*per, n)
		if start >= end {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf, err := unix.Mmap(-1, 0, diskBlock, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
			if err != nil {
				errs[s] = err
				return
			}
			defer unix.Munmap(buf)
			for i := range buf {
				buf[i] = byte(i*7 + s)
			}
			for off := start; off < end; off += diskBlock {
				if err := op(off, min(diskBlock, end-off), buf); err != nil {
					errs[s] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }
