package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ckptbench/tensor"
)

var updateSeeds = flag.Bool("update", false, "rewrite the fuzz seeds in testdata/safetensors from TestInvalidHeaders' cases")

const seedDir = "../../testdata/safetensors"

// fileWithHeader returns a safetensors file with the given JSON header
// (unpadded) and a data section of dataLen bytes.
func fileWithHeader(header string, dataLen int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, dataLen)...)
}

func TestInvalidHeaders(t *testing.T) {
	long := binary.LittleEndian.AppendUint64(nil, 1<<40)
	pastEnd := binary.LittleEndian.AppendUint64(nil, 100)
	pastEnd = append(pastEnd, `{"a":{}}`...)
	for _, tc := range []struct {
		name    string
		content []byte
		want    []string // substrings of the error, besides the path
	}{
		{"short-file", []byte{1, 2, 3}, []string{"3 bytes, shorter than the 8-byte header length"}},
		{"huge-header-length", append(long, "{}"...), []string{"header length 1099511627776 is over the 100000000-byte limit"}},
		{"header-past-end", pastEnd, []string{"header length 100 runs past the end of the 16-byte file"}},
		{"empty-header", fileWithHeader(``, 0), []string{"not valid JSON: EOF"}},
		{"bad-json", fileWithHeader(`{"a":{"dtype":"F16",`, 0), []string{"not valid JSON"}},
		{"not-an-object", fileWithHeader(`[1,2]`, 0), []string{"header is a JSON value starting with \"[\", not a JSON object"}},
		{"trailing-data", fileWithHeader(`{} {}`, 0), []string{"unexpected data after the JSON object"}},
		{"invalid-utf8", fileWithHeader("{\"\xff\":1}", 0), []string{"not valid UTF-8"}},
		{"duplicate-tensor", fileWithHeader(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, 4), []string{`key "a" appears twice`}},
		{"duplicate-field", fileWithHeader(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"shape":[1]}}`, 2), []string{`tensor "a"`, `key "shape" appears twice`}},
		{"missing-dtype", fileWithHeader(`{"a":{"shape":[2],"data_offsets":[0,2]}}`, 2), []string{`tensor "a"`, `missing "dtype"`}},
		{"missing-shape", fileWithHeader(`{"a":{"dtype":"U8","data_offsets":[0,2]}}`, 2), []string{`tensor "a"`, `missing "shape"`}},
		{"bad-offsets", fileWithHeader(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0]}}`, 2), []string{`tensor "a"`, "list of two integers"}},
		{"unknown-dtype", fileWithHeader(`{"a":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}`, 2), []string{`tensor "a"`, `unsupported dtype "F8_E4M3"`, "BF16"}},
		{"negative-dim", fileWithHeader(`{"a":{"dtype":"U8","shape":[-2],"data_offsets":[0,2]}}`, 2), []string{`tensor "a"`, "negative dimension"}},
		{"float-dim", fileWithHeader(`{"a":{"dtype":"U8","shape":[2.5],"data_offsets":[0,2]}}`, 2), []string{`tensor "a"`, `invalid "shape"`}},
		{"overflowing-shape", fileWithHeader(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,2]}}`, 2), []string{`tensor "a"`, "overflows int64"}},
		{"wrong-size", fileWithHeader(`{"w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,10]}}`, 10), []string{`tensor "w"`, "span 10 bytes, but shape [2 3] of F16 needs 12"}},
		{"reversed-offsets", fileWithHeader(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}`, 4), []string{`tensor "a"`, "not an ascending pair"}},
		{"out-of-range", fileWithHeader(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}`, 6), []string{`tensor "b"`, "run past the end of the 6-byte data section"}},
		{"overlap", fileWithHeader(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}`, 6), []string{`tensor "b"`, `overlap tensor "a"`}},
		{"gap", fileWithHeader(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}`, 6), []string{`tensor "b"`, `gap of 2 bytes after tensor "a"`}},
		{"leading-gap", fileWithHeader(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, 4), []string{`tensor "a"`, "gap of 2 bytes at the start"}},
		{"trailing-bytes", fileWithHeader(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, 5), []string{"3 bytes at the end belong to no tensor"}},
		{"metadata-not-string", fileWithHeader(`{"__metadata__":{"format":1}}`, 0), []string{`__metadata__ value of "format" must be a string`}},
		{"empty-name", fileWithHeader(`{"":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}`, 0), []string{"empty tensor name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if *updateSeeds {
				if err := os.WriteFile(filepath.Join(seedDir, tc.name+".safetensors"), tc.content, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(t.TempDir(), "model.safetensors")
			if err := os.WriteFile(path, tc.content, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, f := range []*Format{New(Options{}), New(Options{Mmap: true})} {
				sd, err := f.Load(path)
				if err == nil {
					sd.Close()
					t.Fatalf("codec %s: no error", f.Codec())
				}
				if !errors.Is(err, ErrInvalidHeader) {
					t.Errorf("codec %s: error %q does not wrap ErrInvalidHeader", f.Codec(), err)
				}
				for _, w := range append(tc.want, path) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("codec %s: error %q does not mention %q", f.Codec(), err, w)
					}
				}
			}
		})
	}
}

func TestHeaderAcceptsPaddingAndUnknownKeys(t *testing.T) {
	// Spaces pad the header; unknown keys in an entry are ignored, as the
	// Rust crate ignores them; zero-size tensors may share an offset.
	header := `{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"extra":[1,{"x":null}]},"z":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]}}   `
	h, err := ParseHeader([]byte(header), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Tensors) != 2 || h.Tensors[0].Name != "z" || h.Tensors[1].Name != "a" {
		t.Errorf("tensors %v, want z then a (by offset)", h.Tensors)
	}
	if h.Metadata != nil {
		t.Errorf("metadata %v, want nil", h.Metadata)
	}
}

func TestEncodeHeaderLayout(t *testing.T) {
	tensors := []*tensor.Tensor{
		tensor.New("b", tensor.Float16, 3),
		tensor.New("a<&>", tensor.BFloat16, 1, 2),
	}
	prefix, err := encodeHeader(tensors, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	if len(prefix)%8 != 0 {
		t.Errorf("prefix is %d bytes, not a multiple of 8", len(prefix))
	}
	n := binary.LittleEndian.Uint64(prefix)
	if int(n) != len(prefix)-8 {
		t.Errorf("length field %d, header is %d bytes", n, len(prefix)-8)
	}
	if trimmed := bytes.TrimRight(prefix[8:], " "); trimmed[len(trimmed)-1] != '}' {
		t.Errorf("header ends with %q, want } and spaces", prefix[len(prefix)-8:])
	}
	h, err := ParseHeader(prefix[8:], 10)
	if err != nil {
		t.Fatal(err)
	}
	if h.Metadata["format"] != "pt" {
		t.Errorf("metadata %v, want format=pt", h.Metadata)
	}
	want := []Entry{
		{Meta: tensor.Meta{Name: "b", DType: tensor.Float16, Shape: []int64{3}}, Begin: 0, End: 6},
		{Meta: tensor.Meta{Name: "a<&>", DType: tensor.BFloat16, Shape: []int64{1, 2}}, Begin: 6, End: 10},
	}
	for i, e := range want {
		got := h.Tensors[i]
		if got.Name != e.Name || got.DType != e.DType || got.Begin != e.Begin || got.End != e.End || len(got.Shape) != len(e.Shape) {
			t.Errorf("entry %d is %+v, want %+v", i, got, e)
		}
	}
}

func TestEncodeHeaderRejectsInvalidUTF8(t *testing.T) {
	_, err := encodeHeader([]*tensor.Tensor{tensor.New("bad\xff", tensor.Float16, 1)}, nil)
	if err == nil || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Errorf("error %v, want one about invalid UTF-8", err)
	}
}

// FuzzDecodeHeader checks that no file makes the header parser panic, and
// that every header it accepts tiles the data section and survives a
// re-encode. Seeds are the files in testdata/safetensors.
func FuzzDecodeHeader(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join(seedDir, "*.safetensors"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in %s: %v", seedDir, err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHeader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, ErrInvalidHeader) {
				t.Fatalf("error %q does not wrap ErrInvalidHeader", err)
			}
			return
		}
		dataLen := int64(len(b)) - h.DataOffset()
		var end int64
		tensors := make([]*tensor.Tensor, len(h.Tensors))
		for i, e := range h.Tensors {
			if e.Begin != end || e.End-e.Begin != e.NumBytes() {
				t.Fatalf("accepted entry %+v after offset %d", e, end)
			}
			end = e.End
			tensors[i] = &tensor.Tensor{Meta: e.Meta, Data: b[h.DataOffset()+e.Begin : h.DataOffset()+e.End]}
		}
		if end != dataLen {
			t.Fatalf("accepted entries cover %d of %d data bytes", end, dataLen)
		}
		prefix, err := encodeHeader(tensors, h.Metadata)
		if err != nil {
			t.Fatalf("re-encode an accepted header: %v", err)
		}
		h2, err := ParseHeader(prefix[8:], dataLen)
		if err != nil {
			t.Fatalf("re-parse a re-encoded header: %v", err)
		}
		if len(h2.Tensors) != len(h.Tensors) || len(h2.Metadata) != len(h.Metadata) {
			t.Fatalf("re-encoded header has %d tensors and %d metadata keys, want %d and %d", len(h2.Tensors), len(h2.Metadata), len(h.Tensors), len(h.Metadata))
		}
	})
}
