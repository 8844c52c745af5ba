//go:build torch

package torchsave

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

// damagedTensor is the tensor the verification tests damage.
const damagedTensor = "model.layers.1.self_attn.q_proj.weight"

// saveForVerify saves the tiny model and returns the file, its bytes and
// the state dict saved.
func saveForVerify(t *testing.T) (string, []byte, *tensor.StateDict) {
	t.Helper()
	sd := model.Synthetic(model.Tiny.Config, tensor.Float16, 3)
	path := filepath.Join(t.TempDir(), "ckpt.pt")
	if err := New().Save(path, sd); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, b, sd
}

// loadErr loads path with f and returns the error, closing any result.
func loadErr(f formats.Format, path string) error {
	sd, err := f.Load(path)
	if err == nil {
		sd.Close()
	}
	return err
}

// checkError fails t unless err wraps formats.ErrChecksum and contains
// every string in names.
func checkError(t *testing.T, err error, names ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	if !errors.Is(err, formats.ErrChecksum) {
		t.Errorf("error %v does not wrap formats.ErrChecksum", err)
	}
	for _, s := range names {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
}

func TestVerifyGoodArchive(t *testing.T) {
	path, _, want := saveForVerify(t)
	if err := New().Verify(path); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	got, err := NewWithOptions(Options{VerifyOnLoad: true}).Load(path)
	if err != nil {
		t.Fatalf("verifying Load: %v", err)
	}
	defer got.Close()
	tensortest.Equal(t, want, got)
}

// TestVerifyPayloadBitFlip flips a bit in a tensor's record. libtorch
// 2.1 does not check the zip CRC-32, so plain Load returns the damaged
// bytes; Verify and a verifying Load report the tensor and its record.
func TestVerifyPayloadBitFlip(t *testing.T) {
	path, b, want := saveForVerify(t)
	at := bytes.Index(b, want.Lookup(damagedTensor).Data)
	if at < 0 {
		t.Fatal("the tensor's bytes are not in the archive")
	}
	b[at+100] ^= 0x01
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}

	got, err := New().Load(path)
	if err != nil {
		t.Fatalf("plain Load: %v", err)
	}
	if tensortest.Diff(want, got) == "" {
		t.Error("plain Load returned the original bytes; the test damaged nothing")
	}
	got.Close()

	checkError(t, New().Verify(path), path, damagedTensor, "ckpt.pt/data/")
	checkError(t, loadErr(New().WithVerifyOnLoad(), path), path, damagedTensor, "ckpt.pt/data/")
}

// TestVerifyPickleBitFlip damages data.pkl where it names the tensor, so
// libtorch would read another name; verification rejects the record's
// checksum before libtorch reads it.
func TestVerifyPickleBitFlip(t *testing.T) {
	path, b, _ := saveForVerify(t)
	at := bytes.Index(b, []byte(damagedTensor))
	if at < 0 {
		t.Fatal("the tensor's name is not in the archive")
	}
	b[at] ^= 0x01 // "model" becomes "lodel"
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	checkError(t, New().Verify(path), path, "data.pkl")
	checkError(t, loadErr(New().WithVerifyOnLoad(), path), path, "data.pkl")
}

func TestVerifyTruncated(t *testing.T) {
	path, b, _ := saveForVerify(t)
	if err := os.WriteFile(path, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{New().Verify(path), loadErr(New().WithVerifyOnLoad(), path)} {
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("error %v, want one that names %s and says it may be truncated", err, path)
		}
	}
}

// checkVerifiesJitSave verifies the archive at path, which torch.jit.save
// wrote with nested modules and a non-contiguous tensor, which a
// verifying Load checks by reading its record again. TestPythonInterop
// calls it, so that Python starts once.
func checkVerifiesJitSave(t *testing.T, path string) {
	t.Helper()
	if err := New().Verify(path); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	a, err := readArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.zip.Close()
	views := 0
	for _, x := range a.tensors {
		if !x.coversStorage() {
			views++
		}
	}
	if views == 0 {
		t.Error("every tensor of the jit.save archive is its whole storage, so the re-read path goes untested")
	}
	plain, err := New().Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	verified, err := New().WithVerifyOnLoad().Load(path)
	if err != nil {
		t.Fatalf("verifying Load: %v", err)
	}
	defer verified.Close()
	tensortest.Equal(t, plain, verified)
}
