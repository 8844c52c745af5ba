package zarr

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ckptbench/formats"
	"ckptbench/model"
	"ckptbench/tensor"
	"ckptbench/tensor/tensortest"
)

// damagedTensor is the tensor the verification tests damage; the tiny
// model stores it as one chunk file.
const damagedTensor = "model.layers.1.self_attn.q_proj.weight"

// saveForVerify saves the tiny model with f and returns the checkpoint's
// path, the saved state dict and the chunk file of damagedTensor.
func saveForVerify(t *testing.T, f *Format) (string, *tensor.StateDict, string) {
	t.Helper()
	sd := model.Synthetic(model.Tiny.Config, tensor.Float16, 3)
	path := filepath.Join(t.TempDir(), "ckpt")
	if err := f.Save(path, sd); err != nil {
		t.Fatal(err)
	}
	rel, err := ArrayPath(damagedTensor)
	if err != nil {
		t.Fatal(err)
	}
	return path, sd, filepath.Join(path, filepath.FromSlash(rel), "0.0")
}

// flipBit flips one bit in the middle of the file.
func flipBit(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x04
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkNames fails t unless err wraps ErrChecksum and names the tensor
// and the file.
func checkNames(t *testing.T, err error, file string) {
	t.Helper()
	if !errors.Is(err, formats.ErrChecksum) {
		t.Errorf("error %v does not wrap formats.ErrChecksum", err)
	}
	if err == nil {
		return
	}
	for _, s := range []string{damagedTensor, file} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
}

func TestVerifyGoodCheckpoint(t *testing.T) {
	for _, codec := range []string{"raw", "gzip", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			f := newFormat(t, Options{Codec: codec})
			path, want, _ := saveForVerify(t, f)
			if err := f.Verify(path); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			tensortest.Equal(t, want, load(t, newFormat(t, Options{VerifyOnLoad: true}), path))
		})
	}
}

// TestVerifyBitFlip flips a bit in a raw chunk, which the chunk reader
// cannot notice: plain Load returns the damaged bytes, while Verify and
// Load with VerifyOnLoad report the tensor and its chunk file.
func TestVerifyBitFlip(t *testing.T) {
	f := newFormat(t, Options{Codec: "raw"})
	path, want, chunk := saveForVerify(t, f)
	flipBit(t, chunk)

	got := load(t, f, path)
	if bytes.Equal(got.Lookup(damagedTensor).Data, want.Lookup(damagedTensor).Data) {
		t.Fatal("the bit flip did not change the loaded tensor; the test damaged the wrong file")
	}
	checkNames(t, f.Verify(path), chunk)

	verifying := f.WithVerifyOnLoad()
	if verifying.Name() != f.Name() || verifying.Codec() != f.Codec() {
		t.Errorf("WithVerifyOnLoad changed Name, Codec to %q, %q", verifying.Name(), verifying.Codec())
	}
	sd, err := verifying.Load(path)
	if err == nil {
		sd.Close()
	}
	checkNames(t, err, chunk)
}

// TestVerifySwappedChunks swaps the chunk files of two tensors of the
// same shape, which both load without error unless checked.
func TestVerifySwappedChunks(t *testing.T) {
	f := newFormat(t, Options{Codec: "zstd"})
	path, _, chunk := saveForVerify(t, f)
	other := strings.Replace(chunk, "q_proj", "o_proj", 1)
	tmp := chunk + ".swap"
	for _, r := range [][2]string{{chunk, tmp}, {other, chunk}, {tmp, other}} {
		if err := os.Rename(r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
	if sd, err := f.Load(path); err != nil {
		t.Fatalf("Load without verification: %v", err)
	} else {
		sd.Close()
	}
	err := f.Verify(path)
	checkNames(t, err, chunk)
	if err != nil && !strings.Contains(err.Error(), "o_proj") {
		t.Errorf("Verify error %q reports only one of the two swapped tensors", err)
	}
}

// TestVerifyMultiChunkNamesDirectory checks that a mismatch in an array
// of several chunks names the array's directory and the chunk count.
func TestVerifyMultiChunkNamesDirectory(t *testing.T) {
	f := newFormat(t, Options{Codec: "raw", MaxChunkBytes: 3000})
	path, _, _ := saveForVerify(t, f)
	rel, _ := ArrayPath(damagedTensor)
	dir := filepath.Join(path, filepath.FromSlash(rel))
	flipBit(t, filepath.Join(dir, "1.0"))
	err := f.Verify(path)
	if !errors.Is(err, formats.ErrChecksum) {
		t.Fatalf("Verify = %v, want a checksum mismatch", err)
	}
	if want := "one of the 3 chunk files in " + dir; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

// TestVerifyWithoutChecksums removes the checksums from the index, as in
// a checkpoint saved before they were recorded: plain Load still reads
// it, while Verify and a verifying Load report that it cannot be verified.
func TestVerifyWithoutChecksums(t *testing.T) {
	f := newFormat(t, Options{Codec: "raw"})
	path, want, _ := saveForVerify(t, f)

	editIndex(func(idx *Index) {
		idx.Tensors[11].CRC32C = nil
	})(t, path)
	sd, err := f.WithVerifyOnLoad().Load(path)
	if err == nil {
		sd.Close()
		t.Fatal("verifying Load accepted a tensor without a checksum")
	}
	if !strings.Contains(err.Error(), "model.layers.1.self_attn.k_proj.weight") || !strings.Contains(err.Error(), "re-save") {
		t.Errorf("error %q does not name the tensor and the fix", err)
	}

	editIndex(func(idx *Index) {
		for i := range idx.Tensors {
			idx.Tensors[i].CRC32C = nil
		}
	})(t, path)
	tensortest.Equal(t, want, load(t, f, path))
	err = f.Verify(path)
	if err == nil || !strings.Contains(err.Error(), "records no checksums") {
		t.Errorf("Verify = %v, want an error saying the index records no checksums", err)
	}
}
