package safetensors

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"ckptbench/tensor"
)

// pageSize is the stride at which touchPages reads the mapping.
var pageSize = os.Getpagesize()

// loadMmap maps the whole file privately and faults in every page, so
// the bytes are in memory when it returns. Tensors alias the mapping,
// which Close unmaps.
//
// The mapping is writable copy-on-write (MAP_PRIVATE), so a caller may
// change a tensor's Data without changing the file. Only reads happen
// here, so pages stay shared with the page cache until written.
//
// NOTE: like any file mapping, a tensor's Data faults (SIGBUS) if another
// process truncates the file while the state dict is open.
func loadMmap(file *os.File, path string, h *Header, size int64) (*tensor.StateDict, error) {
	if int64(int(size)) != size {
		return nil, fmt.Errorf("safetensors: %s: %d bytes do not fit in the address space", path, size)
	}
	data, err := unix.Mmap(int(file.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("safetensors: mmap %s: %w", path, err)
	}
	if err := populate(data); err != nil {
		unix.Munmap(data)
		return nil, fmt.Errorf("safetensors: read %s through its mapping: %w", path, err)
	}
	sd := &tensor.StateDict{Tensors: make([]*tensor.Tensor, len(h.Tensors))}
	base := h.DataOffset()
	for i, e := range h.Tensors {
		sd.Tensors[i] = &tensor.Tensor{Meta: e.Meta, Data: data[base+e.Begin : base+e.End : base+e.End]}
	}
	sd.OnClose(func() error {
		if data == nil {
			return nil
		}
		err := unix.Munmap(data)
		data = nil
		if err != nil {
			return fmt.Errorf("safetensors: munmap %s: %w", path, err)
		}
		return nil
	})
	return sd, nil
}

// populate faults in every page of a file mapping for reading, with one
// madvise(MADV_POPULATE_READ) call on Linux 5.14 and later. That call
// returns an error where a plain access would raise SIGBUS. Older kernels
// reject the advice with EINVAL, and then one byte per page is read.
func populate(data []byte) error {
	err := unix.Madvise(data, unix.MADV_POPULATE_READ)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return err
	}
	touchPages(data)
	return nil
}

// touchSink keeps the compiler from discarding touchPages' reads.
var touchSink byte

func touchPages(data []byte) {
	// The advice only tunes readahead; the reads work without it.
	_ = unix.Madvise(data, unix.MADV_SEQUENTIAL)
	var x byte
	for i := 0; i < len(data); i += pageSize {
		x ^= data[i]
	}
	touchSink = x
}
