package torchpickle

import (
	"archive/zip"
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/nlpodyssey/gopickle/types"

	"ckptbench/tensor"
)

// ErrUnsupported is wrapped by errors about valid PyTorch files that this
// reader does not handle: TorchScript archives, big-endian files,
// non-contiguous tensors and pickles of objects other than state dicts.
var ErrUnsupported = errors.New("unsupported PyTorch file")

// maxPickleSize bounds data.pkl. A state dict's pickle holds only names,
// shapes and storage keys, about 100 bytes per tensor in transformers'
// files (so an estimated 25 KB for a 237-tensor LLaMA), and a larger one
// is damaged or not a state dict.
const maxPickleSize = 256 << 20

// legacyMagic is the first pickle of a legacy torch.save file, the
// integer 0x1950a86a20f9469cfc6c, and legacyProtocol the second.
const (
	legacyMagic    = "1950a86a20f9469cfc6c"
	legacyProtocol = 1001
)

// ReadFile reads the torch.save file at path, zip or legacy, into memory
// that the returned state dict's Close releases. Tensors are in the order
// of the pickled dict; tensors that share a storage share memory. Errors
// name the file, and the tensor or record at fault.
func ReadFile(path string) (*tensor.StateDict, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("torchpickle: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("torchpickle: %w", err)
	}
	sd, err := read(f, info.Size())
	if err != nil {
		return nil, fmt.Errorf("torchpickle: %s: %w", path, err)
	}
	return sd, nil
}

// read reads a torch.save file of size bytes from r.
func read(r io.ReaderAt, size int64) (*tensor.StateDict, error) {
	var magic [4]byte
	if _, err := r.ReadAt(magic[:], 0); err != nil {
		return nil, fmt.Errorf("the file is %d bytes, too short to be a torch.save file", size)
	}
	switch {
	case string(magic[:]) == "PK\x03\x04":
		return readZip(r, size)
	case magic[0] == 0x80: // a pickle's PROTO opcode
		return readLegacy(r, size)
	}
	return nil, errors.New("the file is neither a zip archive nor a pickle, so not a torch.save file")
}

// readZip reads the zip format that torch.save writes since PyTorch 1.6.
func readZip(f io.ReaderAt, size int64) (*tensor.StateDict, error) {
	zr, err := zip.NewReader(f, size)
	if err != nil {
		return nil, fmt.Errorf("not a valid zip archive (damaged or truncated download?): %w", err)
	}
	records := make(map[string]*zip.File, len(zr.File))
	for _, zf := range zr.File {
		records[zf.Name] = zf
	}
	prefix, err := archivePrefix(zr.File)
	if err != nil {
		return nil, err
	}
	if _, ok := records[prefix+"constants.pkl"]; ok {
		return nil, fmt.Errorf("%w: this is a TorchScript archive (torch.jit.save or libtorch's serializer), not a torch.save state dict; load it with torch.jit.load", ErrUnsupported)
	}
	if bo, ok := records[prefix+"byteorder"]; ok {
		b, err := readSmallRecord(bo, 16)
		if err != nil {
			return nil, err
		}
		if string(b) != "little" {
			return nil, fmt.Errorf("%w: record %s sets the byte order to %q; only little-endian files are supported", ErrUnsupported, bo.Name, b)
		}
	}

	pkl := records[prefix+"data.pkl"]
	b, err := readSmallRecord(pkl, maxPickleSize)
	if err != nil {
		return nil, err
	}
	b, err = scanPickle(bufio.NewReader(bytes.NewReader(b)), maxPickleSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pkl.Name, err)
	}
	up := newUnpickler(false)
	entries, err := up.load(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pkl.Name, err)
	}

	// Each storage's bytes are the record data/<key>, stored uncompressed.
	offsets := make(map[*Storage]int64, len(up.storages))
	for _, s := range up.storages {
		name := prefix + "data/" + s.Key
		zf, ok := records[name]
		if !ok {
			return nil, fmt.Errorf("record %s of storage %s is missing from the archive", name, s.Key)
		}
		if zf.Method != zip.Store {
			return nil, fmt.Errorf("%w: record %s is compressed (method %d); torch.save stores records uncompressed, so the archive was repacked", ErrUnsupported, name, zf.Method)
		}
		need := s.Numel * int64(s.DType.Size())
		if zf.UncompressedSize64 > math.MaxInt64 || int64(zf.UncompressedSize64) < need {
			return nil, fmt.Errorf("record %s is %d bytes, but storage %s needs %d (%d elements of %s)", name, zf.UncompressedSize64, s.Key, need, s.Numel, s.DType)
		}
		off, err := zf.DataOffset()
		if err != nil {
			return nil, fmt.Errorf("record %s: %w", name, err)
		}
		if off+need > size {
			return nil, fmt.Errorf("record %s runs past the end of the %d-byte file (truncated download?)", name, size)
		}
		offsets[s] = off
	}
	return readTensors(f, entries, offsets)
}

// archivePrefix returns the folder that holds data.pkl, with a trailing
// slash: the file's stem for torch.save, but any name is accepted.
func archivePrefix(files []*zip.File) (string, error) {
	var found []string
	for _, zf := range files {
		dir, base := path.Split(zf.Name)
		if base == "data.pkl" && strings.Count(dir, "/") <= 1 {
			found = append(found, dir)
		}
	}
	switch len(found) {
	case 0:
		return "", errors.New("the zip archive has no data.pkl record, so it is not a torch.save file")
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("the zip archive has %d data.pkl records (%s); a torch.save file has one", len(found), strings.Join(found, ", "))
}

func readSmallRecord(zf *zip.File, limit int64) ([]byte, error) {
	if zf.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("record %s is %d bytes, more than the %d expected", zf.Name, zf.UncompressedSize64, limit)
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", zf.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit))
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", zf.Name, err)
	}
	return b, nil
}

// readLegacy reads the format torch.save wrote before PyTorch 1.6.
func readLegacy(f io.ReaderAt, size int64) (*tensor.StateDict, error) {
	br := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 64<<10)
	var pos int64 // where the next pickle starts
	next := func(what string) ([]byte, error) {
		b, err := scanPickle(br, maxPickleSize)
		if err != nil {
			return nil, fmt.Errorf("%s pickle at byte %d: %w", what, pos, err)
		}
		pos += int64(len(b))
		return b, nil
	}

	b, err := next("magic number")
	if err != nil {
		return nil, fmt.Errorf("the file starts like a pickle but is not a torch.save file: %w", err)
	}
	magic, err := loadValue(bytes.NewReader(b))
	if m, ok := magic.(*big.Int); err != nil || !ok || m.Text(16) != legacyMagic {
		return nil, fmt.Errorf("the file starts with a pickle that is not torch.save's magic number 0x%s, so it is not a torch.save file", legacyMagic)
	}
	if b, err = next("protocol version"); err != nil {
		return nil, err
	}
	if proto, err := loadValue(bytes.NewReader(b)); err != nil || proto != legacyProtocol {
		return nil, fmt.Errorf("%w: legacy protocol version %v; only %d is supported", ErrUnsupported, proto, legacyProtocol)
	}
	if b, err = next("system info"); err != nil {
		return nil, err
	}
	sysInfo, err := loadValue(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("system info pickle: %w", err)
	}
	if d, ok := sysInfo.(*types.Dict); ok {
		if le, ok := d.Get("little_endian"); ok && le != true {
			return nil, fmt.Errorf("%w: the file was written on a big-endian machine", ErrUnsupported)
		}
	}

	if b, err = next("state dict"); err != nil {
		return nil, err
	}
	up := newUnpickler(true)
	entries, err := up.load(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("state dict pickle: %w", err)
	}
	if b, err = next("storage key list"); err != nil {
		return nil, err
	}
	keysValue, err := loadValue(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("storage key list pickle: %w", err)
	}
	keys, ok := keysValue.(*types.List)
	if !ok {
		return nil, fmt.Errorf("the storage key list is %s, not a list", describe(keysValue))
	}

	// The storages follow in key-list order, each an int64 element count
	// and the raw bytes.
	offsets := make(map[*Storage]int64, len(up.storages))
	for i := range keys.Len() {
		key, _ := keys.Get(i).(string)
		s, ok := up.storages[key]
		if !ok {
			return nil, fmt.Errorf("storage key %v in the key list is not referred to by any tensor", keys.Get(i))
		}
		var countBuf [8]byte
		if _, err := f.ReadAt(countBuf[:], pos); err != nil {
			return nil, fmt.Errorf("storage %s: read its size at byte %d: %w (truncated file?)", key, pos, err)
		}
		if n := int64(binary.LittleEndian.Uint64(countBuf[:])); n != s.Numel {
			return nil, fmt.Errorf("storage %s: the data contains %d elements, but the pickle declares %d", key, n, s.Numel)
		}
		nbytes := s.Numel * int64(s.DType.Size())
		if nbytes > size-pos-8 {
			return nil, fmt.Errorf("storage %s runs past the end of the %d-byte file (truncated file?)", key, size)
		}
		offsets[s] = pos + 8
		pos += 8 + nbytes
	}
	for _, s := range up.storages {
		if _, ok := offsets[s]; !ok {
			return nil, fmt.Errorf("storage %s is missing from the storage key list", s.Key)
		}
	}
	return readTensors(f, entries, offsets)
}

// span is the byte range of a storage that its tensors use.
type span struct{ begin, end int64 }

// readTensors checks each tensor against its storage, reads the used part
// of every storage with one ReadAt at offsets[storage], and returns the
// tensors in entry order as slices of those buffers.
func readTensors(f io.ReaderAt, entries []namedRef, offsets map[*Storage]int64) (*tensor.StateDict, error) {
	used := make(map[*Storage]span)
	ranges := make([]span, len(entries))
	for i, e := range entries {
		r, err := byteRange(e)
		if err != nil {
			return nil, err
		}
		ranges[i] = r
		s := e.ref.Storage
		if u, ok := used[s]; ok {
			used[s] = span{min(u.begin, r.begin), max(u.end, r.end)}
		} else {
			used[s] = r
		}
	}

	// Read storages in file order, so the reads make one forward pass over the disk.
	storages := make([]*Storage, 0, len(used))
	for s := range used {
		storages = append(storages, s)
	}
	slices.SortFunc(storages, func(a, b *Storage) int { return cmp.Compare(offsets[a], offsets[b]) })
	sd := &tensor.StateDict{Tensors: make([]*tensor.Tensor, len(entries))}
	bufs := make(map[*Storage][]byte, len(used))
	for _, s := range storages {
		u := used[s]
		buf, err := sd.Alloc(u.end - u.begin)
		if err == nil {
			_, err = f.ReadAt(buf, offsets[s]+u.begin)
		}
		if err != nil {
			sd.Close()
			return nil, fmt.Errorf("read storage %s: %w", s.Key, err)
		}
		bufs[s] = buf
	}
	for i, e := range entries {
		s := e.ref.Storage
		lo := ranges[i].begin - used[s].begin
		hi := ranges[i].end - used[s].begin
		sd.Tensors[i] = &tensor.Tensor{
			Meta: tensor.Meta{Name: e.name, DType: s.DType, Shape: e.ref.Shape},
			Data: bufs[s][lo:hi:hi],
		}
	}
	return sd, nil
}

// byteRange checks that e is a contiguous, C-order view inside its
// storage and returns its byte range in the storage.
func byteRange(e namedRef) (span, error) {
	ref, s := e.ref, e.ref.Storage
	meta := tensor.Meta{Name: e.name, DType: s.DType, Shape: ref.Shape}
	numel := meta.NumElements()
	if numel < 0 {
		return span{}, fmt.Errorf("tensor %s: invalid size %v", e.name, ref.Shape)
	}
	if !contiguous(ref.Shape, ref.Stride) {
		return span{}, fmt.Errorf("%w: tensor %s has size %v and stride %v, which is not contiguous; save it with .contiguous() (state_dict() tensors always are)", ErrUnsupported, e.name, ref.Shape, ref.Stride)
	}
	if ref.Offset > s.Numel || numel > s.Numel-ref.Offset {
		return span{}, fmt.Errorf("tensor %s: elements [%d, %d) lie outside storage %s of %d elements", e.name, ref.Offset, ref.Offset+numel, s.Key, s.Numel)
	}
	size := int64(s.DType.Size())
	return span{ref.Offset * size, (ref.Offset + numel) * size}, nil
}

// contiguous reports whether stride is the C-order stride of shape, as
// torch's is_contiguous decides it: dimensions of size 1 may have any
// stride, and a tensor with no elements is always contiguous.
func contiguous(shape, stride []int64) bool {
	if slices.Contains(shape, 0) {
		return true
	}
	want := int64(1)
	for i := len(shape) - 1; i >= 0; i-- {
		if shape[i] != 1 && stride[i] != want {
			return false
		}
		want *= shape[i]
	}
	return true
}
