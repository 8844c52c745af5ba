//go:build torch

package torchsave

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
	"golang.org/x/sys/unix"

	"ckptbench/device/libtorch"
	"ckptbench/iox"
	"ckptbench/tensor"
)

// Save writes sd to path as a TorchScript archive. The file is written
// under iox.TempPath(path), fsynced and then published with iox.Commit, so
// a failed save leaves an existing checkpoint at path untouched.
//
// NOTE: libtorch 2.1.0 aborts the whole process when a write fails part
// way through the file (see checkSpace). Save checks the free space and
// the file size limit first, but a write error after that check, such as
// EIO or another writer filling the disk, still ends the process.
func (Format) Save(path string, sd *tensor.StateDict) error {
	if err := checkSavable(path, sd); err != nil {
		return fmt.Errorf("torchsave: save %s: %w", path, err)
	}
	if err := checkSpace(path, sd); err != nil {
		return fmt.Errorf("torchsave: save %s: %w", path, err)
	}

	if err := iox.CheckParent(path); err != nil {
		return fmt.Errorf("torchsave: save %s: %w", path, err)
	}

	// Every gotch call below must run on one OS thread, because libtorch
	// keeps the last error per thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	named := make([]ts.NamedTensor, 0, len(sd.Tensors))
	borrowed := make([]*libtorch.Borrowed, 0, len(sd.Tensors))
	defer func() {
		for _, b := range borrowed {
			b.Drop()
		}
	}()
	for _, t := range sd.Tensors {
		b, err := libtorch.Borrow(t)
		if err != nil {
			return fmt.Errorf("torchsave: save %s: %w", path, err)
		}
		borrowed = append(borrowed, b)
		named = append(named, ts.NamedTensor{Name: t.Name, Tensor: b.Tensor})
	}

	tmp := iox.TempPath(path)
	libtorch.ClearError()
	if err := ts.SaveMultiNew(named, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("torchsave: save %s: %w", path, libtorch.Clean(err))
	}
	if err := iox.SyncFile(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("torchsave: save %s: %w", path, err)
	}
	if err := iox.Commit(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("torchsave: save %s: %w", path, err)
	}
	return nil
}

// checkSavable rejects what libtorch or gotch would mishandle, before
// anything is written.
func checkSavable(path string, sd *tensor.StateDict) error {
	if err := sd.Validate(); err != nil {
		return err
	}
	// gotch's SaveMultiNew indexes the first tensor unconditionally and
	// panics on an empty list.
	if len(sd.Tensors) == 0 {
		return errors.New("the state dict has no tensors; a torchsave checkpoint needs at least one")
	}
	for _, t := range sd.Tensors {
		// Names travel as C strings, so a NUL would silently cut them.
		if strings.IndexByte(t.Name, 0) >= 0 {
			return fmt.Errorf("tensor %q: name contains a NUL byte, which libtorch cannot store", t.Name)
		}
	}
	// iox.Commit would swap a directory at path for the new file and then
	// delete it, so never save over something that is not a checkpoint file.
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !info.Mode().IsRegular():
		return fmt.Errorf("%s exists and is not a regular file; a torchsave checkpoint is one file, so remove it or choose another path", path)
	}
	return nil
}

// checkSpace returns an error when the file system holding path, or the
// process's file size limit (RLIMIT_FSIZE), leaves less room than the
// archive needs. libtorch 2.1.0 cannot report a failed write: when one
// fails, PyTorchStreamWriter's destructor tries to finish the zip while
// the first exception unwinds, throws again, and std::terminate aborts the
// process. Checking first turns the common cause, a full disk, into an
// error.
func checkSpace(path string, sd *tensor.StateDict) error {
	need := archiveSize(sd)
	dir := filepath.Dir(path)
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("check free space in %s: %w", dir, err)
	}
	if free := st.Bavail * uint64(st.Bsize); need > free {
		return fmt.Errorf("the archive needs up to %d bytes, but %s has %d bytes free (libtorch aborts the process on a failed write, so the save does not start)", need, dir, free)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		return fmt.Errorf("read the file size limit: %w", err)
	}
	if lim.Cur != unix.RLIM_INFINITY && need > lim.Cur {
		return fmt.Errorf("the archive needs up to %d bytes, but the file size limit (ulimit -f) is %d bytes (libtorch aborts the process on a failed write, so the save does not start)", need, lim.Cur)
	}
	return nil
}

// archiveSize returns an upper bound on the size of sd's archive in bytes.
// Measured with torch 2.1.0, each record costs about 250 bytes plus its
// name beyond its payload, for zip headers, 64-byte alignment and its
// entry in the pickled module. The bound allows 1 KiB plus twice the name
// per record, and 64 KiB for the archive's fixed records.
func archiveSize(sd *tensor.StateDict) uint64 {
	n := uint64(64 << 10)
	for _, t := range sd.Tensors {
		n += uint64(len(t.Data)) + 1024 + 2*uint64(len(t.Name))
	}
	return n
}

// Load reads a TorchScript archive into CPU memory. The returned tensors
// alias the memory of libtorch tensors, which Close frees.
func (f Format) Load(path string) (*tensor.StateDict, error) {
	// libtorch reports a missing file as a zip error; name the cause.
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("torchsave: load: %w", err)
	}
	var a *archive
	if f.opts.VerifyOnLoad {
		var err error
		if a, err = readArchive(path); err != nil {
			return nil, err
		}
		defer a.zip.Close()
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	libtorch.ClearError()

	// The tensors come back in saved order: the module's parameters are
	// its attributes in registration order. The round-trip tests check it.
	named, err := ts.LoadMultiWithDevice(path, gotch.CPU)
	if err != nil {
		return nil, fmt.Errorf("torchsave: load %s: %w (torchsave reads TorchScript archives, as written by libtorch's serializer or torch.jit.save; Python's torch.save files are not)", path, libtorch.Clean(err))
	}

	loaded := make([]*ts.Tensor, 0, len(named))
	sd := &tensor.StateDict{}
	sd.OnClose(func() error {
		var errs []error
		for _, x := range loaded {
			errs = append(errs, x.Drop())
		}
		loaded = nil
		return errors.Join(errs...)
	})
	for i, nt := range named {
		x, err := contiguous(nt.Tensor)
		if err != nil {
			// Drop the tensors that the state dict does not own yet.
			for _, rest := range named[i:] {
				rest.Tensor.Drop()
			}
			sd.Close()
			return nil, fmt.Errorf("torchsave: load %s: tensor %q: %w", path, nt.Name, err)
		}
		loaded = append(loaded, x)
		t, err := libtorch.View(nt.Name, x)
		if err != nil {
			for _, rest := range named[i+1:] {
				rest.Tensor.Drop()
			}
			sd.Close()
			return nil, fmt.Errorf("torchsave: load %s: %w", path, err)
		}
		sd.Add(t)
	}
	if a != nil {
		if err := checkLoaded(a, sd); err != nil {
			sd.Close()
			return nil, err
		}
	}
	return sd, nil
}

// contiguous returns x itself when it is contiguous, or else a contiguous
// copy, dropping x. Archives that torchsave writes hold only contiguous
// tensors; torch.jit.save keeps the strides of views such as a transpose.
func contiguous(x *ts.Tensor) (*ts.Tensor, error) {
	ok, err := x.IsContiguous()
	if err != nil {
		return nil, libtorch.Clean(err)
	}
	if ok {
		return x, nil
	}
	c, err := x.Contiguous(true)
	if err != nil {
		return nil, libtorch.Clean(err)
	}
	return c, nil
}
