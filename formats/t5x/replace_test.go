package t5x

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ckptbench/model"
	"ckptbench/tensor"
	"ckptbench/tensor/tensortest"
)

// TestSaveRejectsUnrelatedPath saves over paths that contain something other
// than a t5x checkpoint. iox.Commit would delete what is there, so each
// save must fail with an error that names the path and leave it as it was.
func TestSaveRejectsUnrelatedPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// make creates what is at path and returns a file inside it, or
		// path itself, whose content must survive.
		make func(t *testing.T, path string) string
		want string
	}{
		{"directory of other files", func(t *testing.T, path string) string {
			mkdir(t, path)
			return writeTestFile(t, filepath.Join(path, "notes.txt"), "keep me")
		}, `has no file named "checkpoint"`},
		{"TensorFlow checkpoint state", func(t *testing.T, path string) string {
			mkdir(t, path)
			writeTestFile(t, filepath.Join(path, "model.ckpt-1.index"), "tf")
			return writeTestFile(t, filepath.Join(path, IndexFile), "model_checkpoint_path: \"model.ckpt-1\"\n")
		}, "is not a t5x msgpack index"},
		{"msgpack map without the t5x keys", func(t *testing.T, path string) string {
			mkdir(t, path)
			return writeTestFile(t, filepath.Join(path, IndexFile), string(pack(t, obj{"step", 1, "params", obj{}})))
		}, "is not a t5x msgpack index"},
		{"empty index file", func(t *testing.T, path string) string {
			mkdir(t, path)
			return writeTestFile(t, filepath.Join(path, IndexFile), "")
		}, "is not a t5x msgpack index"},
		{"index is a directory", func(t *testing.T, path string) string {
			mkdir(t, filepath.Join(path, IndexFile))
			return writeTestFile(t, filepath.Join(path, IndexFile, "x"), "keep me")
		}, "is not a t5x msgpack index"},
		{"regular file", func(t *testing.T, path string) string {
			return writeTestFile(t, path, "keep me")
		}, "is not a directory"},
		{"symbolic link to a checkpoint", func(t *testing.T, path string) string {
			target := path + ".target"
			f, err := New(Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Save(target, model.Synthetic(model.Tiny.Config, tensor.Float16, 1)); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(target, IndexFile)
		}, "is not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(Options{})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "checkpoint_1")
			kept := tt.make(t, path)
			before, err := os.ReadFile(kept)
			if err != nil {
				t.Fatal(err)
			}
			err = f.Save(path, model.Synthetic(model.Tiny.Config, tensor.Float16, 2))
			if err == nil {
				t.Fatalf("Save over %s succeeded; want an error containing %q", tt.name, tt.want)
			}
			for _, w := range []string{path, tt.want, "remove it or choose another path"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q: %v", w, err)
				}
			}
			if after, err := os.ReadFile(kept); err != nil || string(after) != string(before) {
				t.Errorf("%s changed or lost after the rejected save: %q, %v", kept, after, err)
			}
			if rest := leftovers(t, dir, "checkpoint_1", "checkpoint_1.target"); len(rest) > 0 {
				t.Errorf("rejected save left %v", rest)
			}
		})
	}
}

// TestSaveReplacesT5XCheckpoints saves over what Save may replace: an
// empty directory, its own checkpoint, and checkpoints of T5X-style
// writers that Load cannot read (another version, a damaged parameter
// tree).
func TestSaveReplacesT5XCheckpoints(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		make func(t *testing.T, path string)
	}{
		{"empty directory", func(t *testing.T, path string) { mkdir(t, path) }},
		{"own checkpoint", func(t *testing.T, path string) {
			f, err := New(Options{Codec: "raw"})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Save(path, awkwardStateDict()); err != nil {
				t.Fatal(err)
			}
		}},
		{"T5X version 2 with optimizer state", func(t *testing.T, path string) {
			mkdir(t, path)
			writeTestFile(t, filepath.Join(path, IndexFile), string(pack(t, obj{
				"optimizer", obj{"state", obj{"step", 100}, "target", obj{"w", spec("w", "float32", 2)}},
				"version", 2,
			})))
			mkdir(t, filepath.Join(path, "w"))
		}},
		{"inline parameter", func(t *testing.T, path string) {
			mkdir(t, path)
			writeTestFile(t, filepath.Join(path, IndexFile), string(pack(t, index(obj{"w", 1.5}))))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(Options{})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "checkpoint_1")
			tt.make(t, path)
			want := model.Synthetic(model.Tiny.Config, tensor.Float16, 3)
			if err := f.Save(path, want); err != nil {
				t.Fatalf("Save over %s: %v", tt.name, err)
			}
			got, err := f.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			tensortest.Equal(t, want, got)
		})
	}
}

func mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

// writeTestFile writes content to path and returns path.
func writeTestFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
