package iox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// CheckReplaceable returns an error unless a save may replace what is at
// path, because Commit deletes whatever it replaces. Nothing, an empty
// directory and a directory whose marker file isCheckpoint accepts may be
// replaced. format names the checkpoint kind in messages, such as "t5x".
//
// isCheckpoint receives the marker's path and returns nil for a checkpoint
// of this format, or an error that explains why the file is not one.
func CheckReplaceable(path, format, marker string, isCheckpoint func(markerPath string) error) error {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return CheckParent(path)
	}
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%s exists and is not a directory; a %s checkpoint is a directory, so remove it or choose another path", path, format)
	}

	markerPath := filepath.Join(path, marker)
	if _, err := os.Lstat(markerPath); errors.Is(err, fs.ErrNotExist) {
		entries, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		if len(entries) > 0 {
			return fmt.Errorf("%s is a directory but not a %s checkpoint (it has no file named %q), and saving would delete its contents; remove it or choose another path", path, format, marker)
		}
		return nil
	}
	if err := isCheckpoint(markerPath); err != nil {
		return fmt.Errorf("%s is a directory but not a %s checkpoint (%v), and saving would delete its contents; remove it or choose another path", path, format, err)
	}
	return nil
}

// CheckParent returns an error unless the directory that would contain
// path exists, so that a save names that directory rather than the
// temporary path it could not create.
func CheckParent(path string) error {
	parent := filepath.Dir(path)
	info, err := os.Stat(parent)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("directory %s does not exist; create it first or choose another path", parent)
	}
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%s is not a directory, so %s cannot be created in it; choose another path", parent, filepath.Base(path))
	}
	return nil
}

// WriteFileSync creates or truncates path, writes data and fsyncs the
// file before closing it.
func WriteFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err // an *fs.PathError, which names the file
}

// SyncFile makes the contents of the file at path durable.
func SyncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err // an *fs.PathError, which names the file
}
