package torchsave

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ckptbench/formats"
	"ckptbench/tensor"
)

// smallArchive copies testdata/torchsave/small.pt, which libtorch wrote
// through Save for the tensors layer.weight (float16 [4 3]) and
// layer.bias (float32 [3]), and returns the copy's path and bytes.
func smallArchive(t *testing.T) (string, []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "torchsave", "small.pt"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "small.pt")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, b
}

func TestReadArchive(t *testing.T) {
	path, _ := smallArchive(t)
	a, err := readArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.zip.Close()
	want := []struct {
		name  string
		dtype tensor.DType
		shape []int64
	}{{"layer.weight", tensor.Float16, []int64{4, 3}}, {"layer.bias", tensor.Float32, []int64{3}}}
	if len(a.tensors) != len(want) {
		t.Fatalf("%d tensors, want %d", len(a.tensors), len(want))
	}
	for i, w := range want {
		got := a.tensors[i]
		if got.name != w.name || got.Storage.DType != w.dtype || !slices.Equal(got.Shape, w.shape) {
			t.Errorf("tensor %d is %s %s %v, want %s %s %v", i, got.name, got.Storage.DType, got.Shape, w.name, w.dtype, w.shape)
		}
		if !got.coversStorage() {
			t.Errorf("tensor %s does not cover its storage", got.name)
		}
		if _, err := a.record(got); err != nil {
			t.Error(err)
		}
	}
}

// TestVerifyWithoutLibtorch runs Verify, which needs no libtorch, on the
// committed archive before and after damage.
func TestVerifyWithoutLibtorch(t *testing.T) {
	path, b := smallArchive(t)
	if err := New().Verify(path); err != nil {
		t.Fatalf("Verify of an intact archive: %v", err)
	}

	// The bias's 12 payload bytes are 2, 7, 12, ...
	at := bytes.Index(b, []byte{2, 7, 12, 17})
	if at < 0 {
		t.Fatal("the bias payload is not in the archive")
	}
	b[at+5] ^= 0x01
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	err := New().Verify(path)
	if !errors.Is(err, formats.ErrChecksum) {
		t.Errorf("Verify = %v, want a checksum mismatch", err)
	}
	for _, s := range []string{path, `"layer.bias"`, "small.pt/data/1"} {
		if err != nil && !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
}

// FuzzDecodeModule feeds data.pkl records to decodeModule, seeded with
// testdata/torchsave/*.pkl (the pickles of small.pt and of the tiny
// model saved by libtorch). It must not panic, and every tensor it
// accepts must have a name and a size and stride of equal length.
func FuzzDecodeModule(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("..", "..", "testdata", "torchsave", "*.pkl"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in testdata/torchsave: %v", err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tensors, err := decodeModule(b)
		if err != nil {
			return
		}
		for _, x := range tensors {
			if x.name == "" || len(x.Shape) != len(x.Stride) || x.Storage == nil {
				t.Fatalf("accepted tensor %+v", x)
			}
			viewEnd(x)
			x.coversStorage()
		}
	})
}
