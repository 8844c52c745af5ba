package zarr

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"ckptbench/tensor"
)

func TestDTypeStrings(t *testing.T) {
	for d := tensor.Float16; d <= tensor.Bool; d++ {
		s, err := DTypeString(d)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseDType(s)
		if err != nil {
			t.Fatal(err)
		}
		if back != d {
			t.Errorf("ParseDType(DTypeString(%v)) = %v", d, back)
		}
	}
	for s, want := range map[string]tensor.DType{"<i1": tensor.Int8, ">u1": tensor.Uint8, "<b1": tensor.Bool, "bfloat16": tensor.BFloat16} {
		if got, err := ParseDType(s); err != nil || got != want {
			t.Errorf("ParseDType(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for s, wantMsg := range map[string]string{
		"<V2": "bfloat16",
		">f2": "little-endian",
		"<c8": "unsupported",
		"":    "unsupported",
	} {
		_, err := ParseDType(s)
		if err == nil || !strings.Contains(err.Error(), wantMsg) {
			t.Errorf("ParseDType(%q) = %v, want an error mentioning %q", s, err, wantMsg)
		}
	}
	if _, err := DTypeString(tensor.Invalid); err == nil {
		t.Error("DTypeString(Invalid) succeeded")
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	md, err := NewMetadata(tensor.BFloat16, []int64{3, 4}, []int64{2, 4}, mustCodec(t, "zstd"))
	if err != nil {
		t.Fatal(err)
	}
	md.DimensionSeparator = "/"
	dir := t.TempDir()
	if err := WriteMetadata(dir, md); err != nil {
		t.Fatal(err)
	}
	got, err := ReadMetadata(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Compare the JSON values, not their spelling.
	norm := cmp.Transformer("compact", func(b []byte) string { return string(bytes.Join(bytes.Fields(b), nil)) })
	if d := cmp.Diff(md, got, norm); d != "" {
		t.Errorf("metadata differs after a round trip (-want +got):\n%s", d)
	}
}

// TestParseMetadata reads the .zarray files TensorStore 0.1.69 wrote
// (testdata/zarr/valid-*) and rejects the damaged ones (invalid-*).
func TestParseMetadata(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "zarr", "*.zarray"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found %d .zarray files in testdata/zarr, want at least 10", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		_, err = ParseMetadata(b)
		switch {
		case strings.HasPrefix(name, "valid-") && err != nil:
			t.Errorf("%s: %v", name, err)
		case strings.HasPrefix(name, "invalid-") && err == nil:
			t.Errorf("%s: parsed without error", name)
		case strings.HasPrefix(name, "invalid-") && !errors.Is(err, ErrMetadata):
			t.Errorf("%s: error %v does not wrap ErrMetadata", name, err)
		}
	}
}

func TestReadMetadataNamesFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".zarray"), []byte(`{"zarr_format": 2, "shape": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadMetadata(dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, ".zarray")) {
		t.Errorf("ReadMetadata of a damaged file = %v, want an error naming the file", err)
	}

	void := filepath.Join(dir, "void")
	if err := os.Mkdir(void, 0o755); err != nil {
		t.Fatal(err)
	}
	doc := `{"zarr_format":2,"shape":[2],"chunks":[2],"dtype":"<V2","compressor":null,"fill_value":null,"order":"C","filters":null}`
	if err := os.WriteFile(filepath.Join(void, ".zarray"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadMetadata(void)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(void, ".zarray")) || !strings.Contains(err.Error(), `"bfloat16"`) {
		t.Errorf("ReadMetadata of a <V2 array = %v, want an error naming the file and the bfloat16 fix", err)
	}

	_, err = ReadMetadata(filepath.Join(dir, "absent"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadMetadata of a missing array = %v, want ErrNotExist", err)
	}
}

func TestFillBytes(t *testing.T) {
	for _, tc := range []struct {
		dtype, fill string
		want        []byte
	}{
		{"<f2", "null", []byte{0, 0}},
		{"<f2", "0.5", []byte{0x00, 0x38}},
		{"<f2", `"NaN"`, []byte{0x00, 0x7e}},
		{"<f2", `"-Infinity"`, []byte{0x00, 0xfc}},
		{"bfloat16", "1", []byte{0x80, 0x3f}},
		{"<f4", `"Infinity"`, []byte{0, 0, 0x80, 0x7f}},
		{"<i4", "-2", []byte{0xfe, 0xff, 0xff, 0xff}},
		{"|u1", "255", []byte{0xff}},
		{"|b1", "true", []byte{1}},
	} {
		md := Metadata{ZarrFormat: 2, Shape: []int64{1}, Chunks: []int64{1}, DType: tc.dtype, Order: "C", FillValue: []byte(tc.fill)}
		got, err := md.FillBytes()
		if err != nil {
			t.Errorf("%s fill %s: %v", tc.dtype, tc.fill, err)
			continue
		}
		if !bytes.Equal(got, tc.want) {
			t.Errorf("%s fill %s = %x, want %x", tc.dtype, tc.fill, got, tc.want)
		}
	}
	for _, tc := range []struct{ dtype, fill string }{
		{"|u1", "256"}, {"|i1", "1.5"}, {"<f4", `"nan"`}, {"|b1", "1"}, {"<i4", "[0]"},
	} {
		md := Metadata{ZarrFormat: 2, Shape: []int64{1}, Chunks: []int64{1}, DType: tc.dtype, Order: "C", FillValue: []byte(tc.fill)}
		if _, err := md.FillBytes(); !errors.Is(err, ErrMetadata) {
			t.Errorf("%s fill %s: %v, want ErrMetadata", tc.dtype, tc.fill, err)
		}
	}
}
