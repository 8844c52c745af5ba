package t5x

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"ckptbench/iox"
	"ckptbench/model"
	"ckptbench/tensor"
	"ckptbench/tensor/tensortest"
)

var errInjected = errors.New("injected write failure")

// failAfter returns a write hook that fails the n-th chunk write and every
// later one.
func failAfter(n int64) func(string) error {
	var count atomic.Int64
	return func(string) error {
		if count.Add(1) >= n {
			return errInjected
		}
		return nil
	}
}

// leftovers returns the entries of dir other than keep.
func leftovers(t *testing.T, dir string, keep ...string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !contains(keep, e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func loadEqual(t *testing.T, f *Format, path string, want *tensor.StateDict) {
	t.Helper()
	got, err := f.Load(path)
	if err != nil {
		t.Fatalf("Load %s: %v", path, err)
	}
	defer got.Close()
	tensortest.Equal(t, want, got)
}

// TestSaveFailureKeepsOldCheckpoint fails a save over an existing
// checkpoint at its first, a middle and its last chunk write, and checks
// that the old checkpoint still loads and no temporary directory stays.
func TestSaveFailureKeepsOldCheckpoint(t *testing.T) {
	old := model.Synthetic(model.Tiny.Config, tensor.Float16, 1)
	replacement := model.Synthetic(model.Tiny.Config, tensor.Float16, 2)
	good, err := New(Options{Codec: "raw", ChunkBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, x := range replacement.Tensors {
		a, err := good.planArray(x)
		if err != nil {
			t.Fatal(err)
		}
		total += a.grid.numChunks()
	}
	if total < 10 {
		t.Fatalf("the replacement has %d chunks; the test needs many", total)
	}
	for _, n := range []int64{1, total / 2, total} {
		t.Run("fail at write "+strconv.FormatInt(n, 10), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "checkpoint_1")
			if err := good.Save(path, old); err != nil {
				t.Fatal(err)
			}
			bad, _ := New(Options{Codec: "raw", ChunkBytes: 4096, testHookWrite: failAfter(n)})
			err := bad.Save(path, replacement)
			if !errors.Is(err, errInjected) {
				t.Fatalf("Save returned %v, want the injected failure", err)
			}
			loadEqual(t, good, path, old)
			if rest := leftovers(t, dir, "checkpoint_1"); len(rest) > 0 {
				t.Errorf("failed save left %v next to the checkpoint", rest)
			}
		})
	}
}

func TestSaveReplacesCheckpoint(t *testing.T) {
	f, _ := New(Options{})
	dir := t.TempDir()
	path := filepath.Join(dir, "checkpoint_3")
	first := model.Synthetic(model.Tiny.Config, tensor.BFloat16, 1)
	second := awkwardStateDict()
	if err := f.Save(path, first); err != nil {
		t.Fatal(err)
	}
	if err := f.Save(path, second); err != nil {
		t.Fatal(err)
	}
	loadEqual(t, f, path, second)
	if rest := leftovers(t, dir, "checkpoint_3"); len(rest) > 0 {
		t.Errorf("save left %v next to the checkpoint", rest)
	}
	// No file of the first checkpoint may survive in the second.
	if _, err := os.Stat(filepath.Join(path, "model")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the replaced checkpoint's model directory is still there (%v)", err)
	}
}

func TestSaveRejectsInvalidInput(t *testing.T) {
	f, _ := New(Options{})
	short := tensor.New("w", tensor.Float16, 4)
	short.Data = short.Data[:6]
	tests := []struct {
		name string
		sd   *tensor.StateDict
		want string
	}{
		{"short payload", &tensor.StateDict{Tensors: []*tensor.Tensor{short}}, `tensor "w": payload is 6 bytes`},
		{"nested names", &tensor.StateDict{Tensors: []*tensor.Tensor{tensor.New("a", tensor.Float16, 2), tensor.New("a.b", tensor.Float16, 2)}}, `nested under tensor "a"`},
		{"empty name part", &tensor.StateDict{Tensors: []*tensor.Tensor{tensor.New("a..b", tensor.Float16, 2)}}, "empty"},
		{"index name", &tensor.StateDict{Tensors: []*tensor.Tensor{tensor.New("checkpoint", tensor.Float16, 2)}}, "index file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			err := f.Save(filepath.Join(dir, "checkpoint_1"), tt.sd)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Save returned %v, want an error containing %q", err, tt.want)
			}
			if rest := leftovers(t, dir); len(rest) > 0 {
				t.Errorf("rejected save left %v", rest)
			}
		})
	}
	err := f.Save(filepath.Join(t.TempDir(), "missing", "checkpoint_1"), awkwardStateDict())
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Save into a missing directory returned %v, want an error naming it", err)
	}
}

// crashEnv names the checkpoint that TestCrashHelper saves when the test
// binary runs as the crashing child of TestSaveCrashKeepsOldCheckpoint.
const crashEnv = "T5X_CRASH_CHECKPOINT"

// TestCrashHelper is not a test on its own: run by
// TestSaveCrashKeepsOldCheckpoint with crashEnv set, it starts a save and
// exits the process abruptly in the middle, as a crash or a kill would.
func TestCrashHelper(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("runs only as the child process of TestSaveCrashKeepsOldCheckpoint")
	}
	var count atomic.Int64
	f, _ := New(Options{Codec: "gzip", ChunkBytes: 4096, testHookWrite: func(string) error {
		if count.Add(1) == 15 {
			os.Exit(3)
		}
		return nil
	}})
	f.Save(path, model.Synthetic(model.Tiny.Config, tensor.Float16, 2))
	t.Fatal("the save finished; it should have been cut off")
}

func TestSaveCrashKeepsOldCheckpoint(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "checkpoint_1")
	old := model.Synthetic(model.Tiny.Config, tensor.Float16, 1)
	f, _ := New(Options{Codec: "gzip", ChunkBytes: 4096})
	if err := f.Save(path, old); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("crashing save exited with %v, want status 3:\n%s", err, out)
	}
	loadEqual(t, f, path, old)
	// The crash leaves its temporary directory, which iox.IsTemp
	// recognizes and which holds no index, so it cannot pass for a
	// checkpoint.
	rest := leftovers(t, dir, "checkpoint_1")
	if len(rest) != 1 || !iox.IsTemp(rest[0]) {
		t.Fatalf("after the crash the directory holds %v, want one temporary directory", rest)
	}
	if _, err := f.Load(filepath.Join(dir, rest[0])); err == nil || !strings.Contains(err.Error(), "not a complete t5x checkpoint") {
		t.Errorf("loading the crashed save's directory returned %v, want an incomplete-checkpoint error", err)
	}
}
