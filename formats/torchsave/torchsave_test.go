//go:build torch

package torchsave

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ckptbench/model"
	"ckptbench/tensor"
	"ckptbench/tensor/tensortest"
)

// roundTrip saves sd to a fresh file, loads it back and compares.
func roundTrip(t *testing.T, sd *tensor.StateDict) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ckpt.pt")
	if err := New().Save(path, sd); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := New().Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer got.Close()
	tensortest.Equal(t, sd, got)
}

func TestRoundTripTiny(t *testing.T) {
	for _, dtype := range []tensor.DType{tensor.Float16, tensor.BFloat16, tensor.Float32} {
		t.Run(dtype.String(), func(t *testing.T) {
			roundTrip(t, model.Synthetic(model.Tiny.Config, dtype, 1))
		})
	}
}

func TestRoundTripEdgeShapes(t *testing.T) {
	scalar := tensor.New("z.scalar", tensor.Float32)
	binary.LittleEndian.PutUint32(scalar.Data, math.Float32bits(-2.5))
	sd := &tensor.StateDict{}
	// Names out of alphabetical order, so a loader that sorts shows.
	sd.Add(
		scalar,
		tensor.New("m.empty", tensor.Float16, 0, 3),
		tensor.New("a.one", tensor.BFloat16, 1),
		filled(tensor.New("b.float64", tensor.Float64, 2, 3)),
		filled(tensor.New("b.int8", tensor.Int8, 5)),
		filled(tensor.New("b.uint8", tensor.Uint8, 5)),
		filled(tensor.New("b.int32", tensor.Int32, 3)),
		filled(tensor.New("b.int64", tensor.Int64, 3)),
		tensor.New("b.bool", tensor.Bool, 4),
	)
	sd.Lookup("b.bool").Data[2] = 1
	roundTrip(t, sd)
}

// filled sets every payload byte to a distinct value.
func filled(x *tensor.Tensor) *tensor.Tensor {
	for i := range x.Data {
		x.Data[i] = byte(i*7 + 3)
	}
	return x
}

func TestSaveOverExisting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ckpt.pt")
	if err := New().Save(path, model.Synthetic(model.Tiny.Config, tensor.Float16, 1)); err != nil {
		t.Fatalf("first Save: %v", err)
	}
	want := model.Synthetic(model.Tiny.Config, tensor.BFloat16, 2)
	if err := New().Save(path, want); err != nil {
		t.Fatalf("second Save: %v", err)
	}
	got, err := New().Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer got.Close()
	tensortest.Equal(t, want, got)
	assertOnlyFile(t, dir, "ckpt.pt")
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pt")
	garbage := filepath.Join(dir, "garbage.pt")
	if err := os.WriteFile(garbage, []byte("not a zip archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{missing, garbage} {
		sd, err := New().Load(path)
		if err == nil {
			sd.Close()
			t.Errorf("Load(%s) succeeded, want an error", path)
			continue
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("Load(%s) error does not name the file: %v", path, err)
		}
		if strings.Contains(err.Error(), "goroutine ") || strings.Contains(err.Error(), "frame #") {
			t.Errorf("Load(%s) error carries a stack trace: %v", path, err)
		}
	}
}

func TestLoadClosesTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ckpt.pt")
	if err := New().Save(path, model.Synthetic(model.Tiny.Config, tensor.Float16, 3)); err != nil {
		t.Fatalf("Save: %v", err)
	}
	sd, err := New().Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if err := sd.Close(); err != nil {
		t.Errorf("first Close: %v", err)
	}
	if err := sd.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// assertOnlyFile fails t unless dir contains exactly the named file, so a
// leftover temporary file from a save shows.
func assertOnlyFile(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != name {
		t.Errorf("%s contains %q, want only %q", dir, names, name)
	}
}

// readFile returns the file's bytes, failing t on error.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertUnchanged fails t when path no longer holds want.
func assertUnchanged(t *testing.T, path string, want []byte) {
	t.Helper()
	if got := readFile(t, path); !bytes.Equal(got, want) {
		t.Errorf("%s changed after a failed save: %d bytes, was %d", path, len(got), len(want))
	}
}
