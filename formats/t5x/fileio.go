package t5x

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"ckptbench/iox"
)

// maxIO is the most bytes passed to one read or write system call. Linux
// moves at most 2 GiB - 4 KiB per call, so larger chunks go in pieces.
const maxIO = 1 << 30

// aligned reports whether b starts on a block boundary, so O_DIRECT can
// transfer it without a bounce buffer.
func aligned(b []byte) bool {
	return len(b) == 0 || uintptr(unsafe.Pointer(&b[0]))%blockSize == 0
}

// openFlags returns the open flags for a chunk file, with O_DIRECT when
// direct is set.
func openFlags(base int, direct bool) int {
	if direct {
		return base | unix.O_DIRECT | unix.O_CLOEXEC
	}
	return base | unix.O_CLOEXEC
}

// createChunk creates path for writing. With direct set it first tries
// O_DIRECT; on file systems that reject it (tmpfs, some FUSE) it returns
// a plain descriptor and direct=false.
func createChunk(path string, direct bool) (fd int, isDirect bool, err error) {
	const base = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL
	if direct {
		fd, err = unix.Open(path, openFlags(base, true), 0o644)
		if err == nil {
			return fd, true, nil
		}
		if !errors.Is(err, unix.EINVAL) {
			return -1, false, fmt.Errorf("create %s: %w", path, err)
		}
	}
	fd, err = unix.Open(path, openFlags(base, false), 0o644)
	if err != nil {
		return -1, false, fmt.Errorf("create %s: %w", path, err)
	}
	return fd, false, nil
}

// writeChunkFile creates path, writes data to it and syncs it, so the
// file is durable when it returns. The caller syncs its directory entry.
// With direct set and data block-aligned in memory, the bulk goes through
// O_DIRECT, skipping the page cache. The last partial block then goes
// through tail, a block-aligned scratch block of blockSize bytes, and the
// file is truncated to its length afterwards.
//
// When sum is not nil, writeChunkFile also stores the CRC-32C of data in
// *sum. Through the page cache it checksums and writes data one
// checksumPiece at a time, so the kernel's copy into the page cache
// reads each piece from the CPU cache that the checksum just filled.
func writeChunkFile(path string, data []byte, direct bool, tail []byte, sum *uint32) error {
	fd, isDirect, err := createChunk(path, direct && aligned(data))
	if err != nil {
		return err
	}
	switch {
	case sum != nil && !isDirect:
		*sum, err = writeChecksummed(fd, data)
	case sum != nil:
		*sum = checksum(data)
		fallthrough
	default:
		err = writeAll(fd, data, isDirect, tail)
	}
	if err == nil {
		err = unix.Fdatasync(fd)
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func writeAll(fd int, data []byte, direct bool, tail []byte) error {
	size := int64(len(data))
	if !direct {
		return pwriteFull(fd, data, 0)
	}
	bulk := size &^ (blockSize - 1)
	if err := pwriteFull(fd, data[:bulk], 0); err != nil {
		return err
	}
	if bulk == size {
		return nil
	}
	n := copy(tail[:blockSize], data[bulk:])
	clear(tail[n:blockSize])
	if err := pwriteFull(fd, tail[:blockSize], bulk); err != nil {
		return err
	}
	return unix.Ftruncate(fd, size)
}

// writeChecksummed writes data to the start of fd, a piece at a time,
// and returns its CRC-32C.
func writeChecksummed(fd int, data []byte) (uint32, error) {
	var sum uint32
	for off := 0; off < len(data); off += checksumPiece {
		piece := data[off:min(off+checksumPiece, len(data))]
		sum = crc32.Update(sum, castagnoli, piece)
		if err := pwriteFull(fd, piece, int64(off)); err != nil {
			return 0, err
		}
	}
	return sum, nil
}

// pwriteFull writes all of b at off, in calls of at most maxIO bytes.
func pwriteFull(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b[:min(len(b), maxIO)], off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("pwrite at offset %d: %w", off, err)
		}
		if n == 0 {
			return fmt.Errorf("pwrite at offset %d: %w", off, io.ErrShortWrite)
		}
		b = b[n:]
		off += int64(n)
	}
	return nil
}

// preadFull reads into b from off until b is full or the file ends, in
// calls of at most maxIO bytes, and returns the number of bytes read.
func preadFull(fd int, b []byte, off int64) (int, error) {
	total := 0
	for total < len(b) {
		n, err := unix.Pread(fd, b[total:min(len(b), total+maxIO)], off+int64(total))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return total, fmt.Errorf("pread at offset %d: %w", off+int64(total), err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	return total, nil
}

// chunkFile is an open chunk file for reading.
type chunkFile struct {
	fd     int
	direct bool
	size   int64
}

// openChunk opens path for reading. With direct set, it switches the file
// to O_DIRECT unless the page cache contains all of it or the file system
// rejects O_DIRECT. A cold file then skips the kernel's copy, and a cached
// one is not read from the disk again. A missing file returns an error
// that wraps fs.ErrNotExist (unix.ENOENT).
func openChunk(path string, direct bool) (chunkFile, error) {
	fd, err := unix.Open(path, openFlags(unix.O_RDONLY, false), 0)
	if err != nil {
		return chunkFile{fd: -1}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return chunkFile{fd: -1}, fmt.Errorf("stat: %w", err)
	}
	f := chunkFile{fd: fd, size: st.Size}
	if direct && !wholeFileCached(fd, st.Size) {
		f.direct = setDirect(fd)
	}
	return f, nil
}

// wholeFileCached reports whether every page of the open file fd, of size
// bytes, is in the page cache. Without cachestat it reports false.
func wholeFileCached(fd int, size int64) bool {
	pages, err := iox.FileCachedPages(fd, 0, 0)
	return err == nil && pages*int64(os.Getpagesize()) >= size
}

// setDirect turns on O_DIRECT for the open file fd and reports whether
// the file system accepted it.
func setDirect(fd int) bool {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return false
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags|unix.O_DIRECT)
	return err == nil
}

func (f chunkFile) close() { unix.Close(f.fd) }

// readInto fills dst with the file's first len(dst) bytes. Through
// O_DIRECT, the bulk lands straight in dst when dst is block-aligned. The
// last partial block goes through tail (blockSize aligned bytes), so no
// byte past len(dst) is written. An unaligned dst is filled through tail
// one block at a time.
func (f chunkFile) readInto(dst []byte, tail []byte) error {
	if int64(len(dst)) > f.size {
		return fmt.Errorf("the file is %d bytes, shorter than the %d to read", f.size, len(dst))
	}
	if !f.direct || !aligned(dst) {
		if f.direct {
			return f.readBounced(dst, tail)
		}
		n, err := preadFull(f.fd, dst, 0)
		if err == nil && n < len(dst) {
			err = fmt.Errorf("read %d of %d bytes: %w", n, len(dst), io.ErrUnexpectedEOF)
		}
		return err
	}
	bulk := len(dst) &^ (blockSize - 1)
	n, err := preadFull(f.fd, dst[:bulk], 0)
	if err != nil {
		return err
	}
	if n < bulk {
		return fmt.Errorf("read %d of %d bytes: %w", n, len(dst), io.ErrUnexpectedEOF)
	}
	if bulk == len(dst) {
		return nil
	}
	m, err := preadFull(f.fd, tail[:blockSize], int64(bulk))
	if err != nil {
		return err
	}
	if m < len(dst)-bulk {
		return fmt.Errorf("read %d of %d bytes: %w", bulk+m, len(dst), io.ErrUnexpectedEOF)
	}
	copy(dst[bulk:], tail[:len(dst)-bulk])
	return nil
}

// readBounced reads an O_DIRECT file into an unaligned dst one block at
// a time through tail. It is the slow path, for callers whose memory is
// not block-aligned.
func (f chunkFile) readBounced(dst []byte, tail []byte) error {
	for off := 0; off < len(dst); off += blockSize {
		m, err := preadFull(f.fd, tail[:blockSize], int64(off))
		if err != nil {
			return err
		}
		want := min(blockSize, len(dst)-off)
		if m < want {
			return fmt.Errorf("read %d of %d bytes: %w", off+m, len(dst), io.ErrUnexpectedEOF)
		}
		copy(dst[off:], tail[:want])
	}
	return nil
}

// readAll reads the whole file into buf, whose capacity must be the file
// size rounded up to blockSize and which must be block-aligned when the
// file is open with O_DIRECT. It returns buf[:size].
func (f chunkFile) readAll(buf []byte) ([]byte, error) {
	want := int(f.size)
	n := want
	if f.direct {
		n = int(alignUp(f.size))
	}
	got, err := preadFull(f.fd, buf[:n], 0)
	if err != nil {
		return nil, err
	}
	if got < want {
		return nil, fmt.Errorf("read %d of %d bytes: %w", got, want, io.ErrUnexpectedEOF)
	}
	return buf[:want], nil
}
