package safetensors

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ckptbench/formats"
	"ckptbench/tensor"
	"ckptbench/tensor/tensortest"
)

// damagedTensor is the tensor the verification tests damage.
const damagedTensor = "model.layers.1.self_attn.q_proj.weight"

var verifyCodecs = []Options{{}, {Mmap: true}}

// verifyTensors returns a few float16 tensors with distinct bytes,
// damagedTensor among them. (The model package imports this one, so its
// synthetic models cannot be used here.)
func verifyTensors() *tensor.StateDict {
	sd := &tensor.StateDict{}
	for i, name := range []string{"model.embed_tokens.weight", damagedTensor, "model.layers.1.self_attn.o_proj.weight", "model.norm.weight"} {
		x := tensor.New(name, tensor.Float16, 64, 64)
		if name == "model.norm.weight" {
			x = tensor.New(name, tensor.Float16, 64)
		}
		state := uint32(i + 1)
		for j := range x.Data {
			state = state*1664525 + 1013904223
			x.Data[j] = byte(state >> 24)
		}
		sd.Add(x)
	}
	return sd
}

// saveForVerify saves verifyTensors and returns the file and the state
// dict saved.
func saveForVerify(t *testing.T) (string, *tensor.StateDict) {
	t.Helper()
	sd := verifyTensors()
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := WriteFile(path, sd); err != nil {
		t.Fatal(err)
	}
	return path, sd
}

// loadErr loads path with f and returns the error, closing any result.
func loadErr(f formats.Format, path string) error {
	sd, err := f.Load(path)
	if err == nil {
		sd.Close()
	}
	return err
}

// checkNames fails t unless err is non-nil and names the file and every
// string in names.
func checkNames(t *testing.T, err error, path string, names ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	for _, s := range append(names, path) {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
}

func TestVerifyGoodFile(t *testing.T) {
	path, want := saveForVerify(t)
	if err := New(Options{}).Verify(path); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	for _, opts := range verifyCodecs {
		opts.VerifyOnLoad = true
		got, err := New(opts).Load(path)
		if err != nil {
			t.Fatalf("codec %s: %v", New(opts).Codec(), err)
		}
		tensortest.Equal(t, want, got)
		got.Close()
	}
}

// TestVerifyBitFlip flips one bit of a tensor's payload: plain Load
// returns the damaged bytes, while Verify and a verifying Load, with
// either codec, name the tensor and the file.
func TestVerifyBitFlip(t *testing.T) {
	path, want := saveForVerify(t)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(b, want.Lookup(damagedTensor).Data)
	if at < 0 {
		t.Fatal("the tensor's bytes are not in the file")
	}
	b[at+100] ^= 0x01
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}

	got, err := ReadFile(path)
	if err != nil {
		t.Fatalf("plain Load: %v", err)
	}
	if tensortest.Diff(want, got) == "" {
		t.Error("plain Load returned the original bytes; the test damaged nothing")
	}
	got.Close()

	err = New(Options{}).Verify(path)
	checkNames(t, err, path, damagedTensor)
	if !errors.Is(err, formats.ErrChecksum) {
		t.Errorf("Verify error %v does not wrap formats.ErrChecksum", err)
	}
	for _, opts := range verifyCodecs {
		f := New(opts).WithVerifyOnLoad()
		err := loadErr(f, path)
		checkNames(t, err, path, damagedTensor)
		if !errors.Is(err, formats.ErrChecksum) {
			t.Errorf("codec %s: error %v does not wrap formats.ErrChecksum", f.Codec(), err)
		}
	}
}

// rewriteHeader rewrites the file at path with its payloads unchanged and
// a header made from the tensors' metadata after edit and from the
// __metadata__ map after editMeta.
func rewriteHeader(t *testing.T, path string, edit func(*tensor.StateDict), editMeta func(map[string]string)) {
	t.Helper()
	sd, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	h, err := ReadHeader(path)
	if err != nil {
		t.Fatal(err)
	}
	edit(sd)
	editMeta(h.Metadata)
	prefix, err := encodeHeader(sd.Tensors, h.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	out := bytes.NewBuffer(prefix)
	for _, x := range sd.Tensors {
		out.Write(x.Data)
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyHeaderEdits changes a tensor's dtype or shape in a header that
// stays valid, with the payload's size unchanged, which plain Load cannot
// notice.
func TestVerifyHeaderEdits(t *testing.T) {
	cases := map[string]func(*tensor.Tensor){
		"dtype": func(x *tensor.Tensor) { x.DType = tensor.BFloat16 },
		"shape": func(x *tensor.Tensor) { x.Shape = []int64{32, 128} },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			path, _ := saveForVerify(t)
			rewriteHeader(t, path, func(sd *tensor.StateDict) { edit(sd.Lookup(damagedTensor)) }, func(map[string]string) {})
			if err := loadErr(New(Options{}), path); err != nil {
				t.Fatalf("plain Load: %v", err)
			}
			err := New(Options{}).Verify(path)
			checkNames(t, err, path, damagedTensor, "the checksum record")
			if !errors.Is(err, formats.ErrChecksum) {
				t.Errorf("Verify error %v does not wrap formats.ErrChecksum", err)
			}
			checkNames(t, loadErr(New(Options{VerifyOnLoad: true}), path), path, damagedTensor)
		})
	}
}

// TestVerifyWithoutChecksums checks a file with no checksum record, as
// other tools write: plain Load reads it, while Verify and a verifying
// Load report that it cannot be verified and how to fix that.
func TestVerifyWithoutChecksums(t *testing.T) {
	path, want := saveForVerify(t)
	rewriteHeader(t, path, func(*tensor.StateDict) {}, func(m map[string]string) { delete(m, ChecksumsKey) })
	got, err := ReadFile(path)
	if err != nil {
		t.Fatalf("plain Load: %v", err)
	}
	tensortest.Equal(t, want, got)
	got.Close()
	checkNames(t, New(Options{}).Verify(path), path, "records no checksums", "re-save")
	checkNames(t, loadErr(New(Options{VerifyOnLoad: true}), path), path, "records no checksums")
}

// TestVerifyTruncated cuts the file inside the damaged tensor's payload.
func TestVerifyTruncated(t *testing.T) {
	path, want := saveForVerify(t)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(b, want.Lookup(damagedTensor).Data)
	if err := os.Truncate(path, int64(at+10)); err != nil {
		t.Fatal(err)
	}
	checkNames(t, New(Options{}).Verify(path), path, damagedTensor, "truncated")
}
