package iox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// TempPath returns a sibling of dst that no other save uses, for a
// checkpoint to be written under before Commit renames it to dst.
// Its name starts with dst's base name and contains ".tmp-", which
// IsTemp recognizes.
func TempPath(dst string) string {
	dst = filepath.Clean(dst)
	suffix := ".tmp-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	return filepath.Join(filepath.Dir(dst), filepath.Base(dst)+suffix)
}

// IsTemp reports whether name is a leftover of a save that did not
// finish: a path made by TempPath, or an old checkpoint that Commit's
// fallback moved aside under a ".old-" name before removing it.
func IsTemp(name string) bool {
	base := filepath.Base(name)
	for _, marker := range []string{".tmp-", ".old-"} {
		if i := strings.Index(base, marker); i > 0 {
			return true
		}
	}
	return false
}

// Commit makes the finished checkpoint at tmp (a file or a directory whose
// contents are already synced) visible at dst in one step, then syncs the
// parent directory so the rename itself is durable.
//
// When dst already exists, the two are swapped with renameat2's
// RENAME_EXCHANGE and the old checkpoint is removed afterwards, so at every
// instant dst names either the complete old checkpoint or the complete new
// one. On file systems without RENAME_EXCHANGE, a file is replaced with a
// plain rename (atomic by POSIX) and a directory by moving the old one aside
// first, which leaves a short window where dst does not exist but the old
// checkpoint survives under a ".old-" name.
func Commit(tmp, dst string) error {
	parent := filepath.Dir(filepath.Clean(dst))
	if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(tmp, dst); err != nil {
			return fmt.Errorf("commit %s: %w", dst, err)
		}
		return SyncDir(parent)
	}
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE)
	if err == nil {
		// tmp now holds the old checkpoint. If the swap cannot be made
		// durable, swap back, so that an error always means dst still
		// holds the old checkpoint and tmp the new one, which callers
		// then remove.
		if err := SyncDir(parent); err != nil {
			if uerr := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE); uerr != nil {
				return fmt.Errorf("commit %s: %w (and swapping the old checkpoint back from %s failed: %v; keep %s)", dst, err, tmp, uerr, tmp)
			}
			return fmt.Errorf("commit %s: %w", dst, err)
		}
		if err := os.RemoveAll(tmp); err != nil {
			return fmt.Errorf("commit %s: remove the replaced checkpoint at %s: %w", dst, tmp, err)
		}
		return SyncDir(parent)
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("commit %s: swap with %s: %w", dst, tmp, err)
	}
	info, err := os.Stat(tmp)
	if err != nil {
		return fmt.Errorf("commit %s: %w", dst, err)
	}
	if !info.IsDir() {
		if err := os.Rename(tmp, dst); err != nil {
			return fmt.Errorf("commit %s: %w", dst, err)
		}
		return SyncDir(parent)
	}
	old := dst + ".old-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := os.Rename(dst, old); err != nil {
		return fmt.Errorf("commit %s: move the old checkpoint aside: %w", dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		// Put the old checkpoint back; the new one stays at tmp.
		if rerr := os.Rename(old, dst); rerr != nil {
			return fmt.Errorf("commit %s: %w (and restoring the old checkpoint from %s failed: %v)", dst, err, old, rerr)
		}
		return fmt.Errorf("commit %s: %w", dst, err)
	}
	if err := SyncDir(parent); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// SyncDir fsyncs a directory so that entries created or renamed in it are
// durable.
func SyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// SyncTree fsyncs every regular file and directory under root, files
// first, so a checkpoint written with unsynced writes becomes durable.
func SyncTree(root string) error {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return SyncFile(p)
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := SyncDir(dirs[i]); err != nil {
			return err
		}
	}
	return nil
}
