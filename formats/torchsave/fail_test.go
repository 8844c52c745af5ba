//go:build torch

package torchsave

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"ckptbench/model"
	"ckptbench/tensor"
)

// saveOld writes a small checkpoint at dir/ckpt.pt and returns its path
// and bytes, the old checkpoint a failed save must leave intact.
func saveOld(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	path := filepath.Join(dir, "ckpt.pt")
	if err := New().Save(path, model.Synthetic(model.Tiny.Config, tensor.Float16, 1)); err != nil {
		t.Fatalf("Save: %v", err)
	}
	return path, readFile(t, path)
}

func TestFailedSaveNamesTensor(t *testing.T) {
	short := model.Synthetic(model.Tiny.Config, tensor.Float16, 2)
	bad := short.Tensors[3]
	bad.Data = bad.Data[:len(bad.Data)-2]

	duplicate := model.Synthetic(model.Tiny.Config, tensor.Float16, 2)
	duplicate.Add(tensor.New(duplicate.Tensors[0].Name, tensor.Float16, 1))

	withNUL := &tensor.StateDict{}
	withNUL.Add(tensor.New("layer\x00weight", tensor.Float16, 2))

	for _, c := range []struct {
		name   string
		sd     *tensor.StateDict
		tensor string
	}{
		{"short payload", short, bad.Name},
		{"duplicate name", duplicate, duplicate.Tensors[0].Name},
		{"NUL in name", withNUL, "layer\\x00weight"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path, old := saveOld(t, dir)
			err := New().Save(path, c.sd)
			if err == nil {
				t.Fatal("Save succeeded, want an error")
			}
			if !strings.Contains(err.Error(), c.tensor) {
				t.Errorf("error does not name tensor %s: %v", c.tensor, err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error does not name the file %s: %v", path, err)
			}
			assertUnchanged(t, path, old)
			assertOnlyFile(t, dir, "ckpt.pt")
		})
	}
}

func TestSaveEmptyStateDict(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ckpt.pt")
	err := New().Save(path, &tensor.StateDict{})
	if err == nil || !strings.Contains(err.Error(), "no tensors") {
		t.Fatalf("Save of an empty state dict: got %v, want an error saying it has no tensors", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Save left %s behind (stat: %v)", path, err)
	}
}

func TestSaveOverDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ckpt")
	keep := filepath.Join(path, "keep")
	if err := os.MkdirAll(keep, 0o755); err != nil {
		t.Fatal(err)
	}
	err := New().Save(path, model.Synthetic(model.Tiny.Config, tensor.Float16, 1))
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Save over a directory: got %v, want an error saying it is not a regular file", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("the directory's contents are gone: %v", err)
	}
}

// TestFailedSaveReadOnlyDir saves into a directory where no file can be
// created: libtorch fails to open the temporary file.
func TestFailedSaveReadOnlyDir(t *testing.T) {
	dir := t.TempDir()
	path, old := saveOld(t, dir)
	makeReadOnly(t, dir)

	err := New().Save(path, model.Synthetic(model.Tiny.Config, tensor.Float16, 2))
	if err == nil {
		t.Fatal("Save into a read-only directory succeeded, want an error")
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error does not name the file %s: %v", path, err)
	}
	if strings.Contains(err.Error(), "goroutine ") || strings.Contains(err.Error(), "frame #") {
		t.Errorf("error carries a stack trace: %v", err)
	}
	t.Logf("error: %v", err)
	assertUnchanged(t, path, old)
	assertOnlyFile(t, dir, "ckpt.pt")
}

// makeReadOnly makes dir reject new files until the test ends. Root
// ignores permission bits, so as root the directory is made immutable
// (chattr +i) instead; the test is skipped where neither works.
func makeReadOnly(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
			t.Skipf("cannot make %s read-only as root: chattr +i: %v: %s", dir, err, out)
		}
		t.Cleanup(func() { exec.Command("chattr", "-i", dir).Run() })
	} else {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
	}
	probe := filepath.Join(dir, "probe")
	if f, err := os.Create(probe); err == nil {
		f.Close()
		os.Remove(probe)
		t.Skipf("%s still accepts new files", dir)
	}
}

// TestSaveOverFileSizeLimit lowers RLIMIT_FSIZE below the archive's
// size. libtorch 2.1.0 aborts the process when a write fails mid-file, so
// Save must notice before it starts and leave the old checkpoint intact.
func TestSaveOverFileSizeLimit(t *testing.T) {
	dir := t.TempDir()
	path, old := saveOld(t, dir)

	var saved syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &saved); err != nil {
		t.Fatal(err)
	}
	limit := saved
	limit.Cur = 64 << 10 // the Tiny model's archive in float16 is about 270 KB
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limit); err != nil {
		t.Skipf("cannot lower RLIMIT_FSIZE: %v", err)
	}
	err := New().Save(path, model.Synthetic(model.Tiny.Config, tensor.Float16, 2))
	if rerr := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &saved); rerr != nil {
		t.Fatalf("restore RLIMIT_FSIZE: %v", rerr)
	}
	if err == nil || !strings.Contains(err.Error(), "file size limit") {
		t.Fatalf("Save past RLIMIT_FSIZE: got %v, want an error about the file size limit", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error does not name the file %s: %v", path, err)
	}
	assertUnchanged(t, path, old)
	assertOnlyFile(t, dir, "ckpt.pt")
}

func TestArchiveSizeBound(t *testing.T) {
	many := &tensor.StateDict{}
	for i := range 300 {
		many.Add(tensor.New(fmt.Sprintf("model.layers.%d.%s.weight", i, strings.Repeat("x", 150)), tensor.Float16, 1))
	}
	for name, sd := range map[string]*tensor.StateDict{
		"tiny":               model.Synthetic(model.Tiny.Config, tensor.Float32, 1),
		"many small tensors": many,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ckpt.pt")
			if err := New().Save(path, sd); err != nil {
				t.Fatalf("Save: %v", err)
			}
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if bound := archiveSize(sd); uint64(info.Size()) > bound {
				t.Errorf("archive is %d bytes, above the bound of %d", info.Size(), bound)
			}
		})
	}
}
