package iox

import (
	"fmt"
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
