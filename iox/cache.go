package iox

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// DropCache evicts the pages of every regular file under path (a file or a
// directory) from the page cache, so the next read of them comes from the
// disk. Each file is fsynced first, because the kernel keeps dirty pages
// whatever the advice. Call it outside timed regions.
func DropCache(path string) error {
	return walkFiles(path, func(p string, _ fs.FileInfo) error {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			// A read-only file cannot be dirty from this process; advise anyway.
			if f, err = os.Open(p); err != nil {
				return err
			}
		} else if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("drop cache: sync %s: %w", p, err)
		}
		defer f.Close()
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			return fmt.Errorf("drop cache: fadvise %s: %w", p, err)
		}
		return nil
	})
}

// Usage returns the number of files under path and the sum of their sizes
// in bytes (apparent sizes, which is what a checkpoint stores).
func Usage(path string) (files int, bytes int64, err error) {
	err = walkFiles(path, func(_ string, info fs.FileInfo) error {
		files++
		bytes += info.Size()
		return nil
	})
	return files, bytes, err
}

// walkFiles calls fn for path itself when it is a regular file, or for
// every regular file below it when it is a directory.
func walkFiles(path string, fn func(string, fs.FileInfo) error) error {
	return filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return fn(p, info)
	})
}

// FillCache reads every regular file under path through the page cache,
// which is the state a warm load assumes. Memory permitting, the next read
// finds every page cached. Call it outside timed regions.
func FillCache(path string) error {
	buf := make([]byte, 1<<20)
	return walkFiles(path, func(p string, _ fs.FileInfo) error {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("fill cache: %w", err)
		}
		defer f.Close()
		for {
			_, err := f.Read(buf)
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("fill cache: read %s: %w", p, err)
			}
		}
	})
}

// CachedBytes returns the bytes of the regular files under path that are
// in the page cache, counted in whole pages, and the files' total size.
// It uses cachestat (Linux 6.5 and later), so on older kernels the error
// wraps unix.ENOSYS.
func CachedBytes(path string) (cached, total int64, err error) {
	page := int64(os.Getpagesize())
	err = walkFiles(path, func(p string, info fs.FileInfo) error {
		total += info.Size()
		pages, err := cachedPages(p)
		if err != nil {
			return err
		}
		cached += min(pages*page, info.Size())
		return nil
	})
	return cached, total, err
}

// cachedPages returns the number of the file's pages in the page cache.
func cachedPages(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	pages, err := FileCachedPages(int(f.Fd()), 0, 0)
	if err != nil {
		return 0, fmt.Errorf("cachestat %s: %w", path, err)
	}
	return pages, nil
}

// FileCachedPages returns how many pages of the open file fd in the byte
// range [off, off+length) are in the page cache, where a length of 0 means
// to the end of the file. The error wraps unix.ENOSYS without cachestat.
func FileCachedPages(fd int, off, length int64) (int64, error) {
	var st unix.Cachestat_t
	r := unix.CachestatRange{Off: uint64(off), Len: uint64(length)}
	if err := unix.Cachestat(uint(fd), &r, &st, 0); err != nil {
		return 0, err
	}
	return int64(st.Cache), nil
}
