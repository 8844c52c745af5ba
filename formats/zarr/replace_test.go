package zarr

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ckptbench/model"
	"ckptbench/tensor"
	"ckptbench/tensor/tensortest"
)

// TestSaveKeepsUnrelatedPaths saves over paths that are not zarr
// checkpoints, which iox.Commit would replace and delete.
func TestSaveKeepsUnrelatedPaths(t *testing.T) {
	f := newFormat(t, Options{Codec: "raw"})
	sd := model.Synthetic(model.Tiny.Config, tensor.Float16, 1)
	cases := map[string]func(t *testing.T, path string){
		"directory with a file": func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(path, "notes.txt"), []byte("keep"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"regular file": func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("keep"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ckpt")
			setup(t, path)
			err := f.Save(path, sd)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "choose another path") {
				t.Errorf("Save = %v, want an error that names %s and the fix", err, path)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s is gone: %v", path, err)
			}
		})
	}

	t.Run("empty directory", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "ckpt")
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := f.Save(path, sd); err != nil {
			t.Fatalf("Save over an empty directory: %v", err)
		}
		tensortest.Equal(t, sd, load(t, f, path))
	})
}

func TestSaveRejectsForeignIndexJSON(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "app")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	precious := filepath.Join(dir, "precious.txt")
	if err := os.WriteFile(filepath.Join(dir, IndexFile), []byte(`{"name":"my web app"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(precious, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := New(Options{Codec: "raw"})
	if err != nil {
		t.Fatal(err)
	}
	sd := &tensor.StateDict{}
	sd.Add(tensor.New("w", tensor.Float16, 2, 2))
	err = f.Save(dir, sd)
	if err == nil || !strings.Contains(err.Error(), "not a zarr checkpoint's index") {
		t.Fatalf("Save over a directory with a foreign index.json: got %v, want a rejection", err)
	}
	if b, err := os.ReadFile(precious); err != nil || string(b) != "keep me" {
		t.Errorf("precious.txt after the rejected save: %q, %v", b, err)
	}
}
