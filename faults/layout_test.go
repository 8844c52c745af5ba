package faults

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ckptbench/formats/safetensors"
	"ckptbench/formats/zarr"
)

// The checkpoint layouts the damage tests know how to damage. A format
// with another layout fails TestDamagedCheckpoint until one is added
// here.
type layoutKind int

const (
	// dirLayout is a directory with one zarr array per tensor, at
	// zarr.ArrayPath of its name, and an index file at the top (zarr, t5x).
	dirLayout layoutKind = iota
	// safetensorsLayout is one safetensors file.
	safetensorsLayout
	// zipLayout is one zip archive whose records store the payloads
	// uncompressed, as PyTorch's serializers write them (torchsave).
	zipLayout
)

// checkpoint is a saved checkpoint that a damage test changes.
type checkpoint struct {
	path string
	kind layoutKind
}

// detectLayout returns the layout of the checkpoint at path, failing t
// for one it does not know.
func detectLayout(t *testing.T, path string) checkpoint {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	c := checkpoint{path: path}
	switch {
	case info.IsDir():
		c.kind = dirLayout
		if _, err := os.Stat(filepath.Join(c.arrayDir(t, target), ".zarray")); err != nil {
			t.Fatalf("%s is a directory without a zarr array for %s at zarr.ArrayPath; teach faults/layout_test.go its layout", path, target)
		}
	case hasPrefix(t, path, []byte("PK\x03\x04")):
		c.kind = zipLayout
	default:
		if _, err := safetensors.ReadHeader(path); err != nil {
			t.Fatalf("the checkpoint file %s is neither a zip archive nor safetensors (%v); teach faults/layout_test.go its layout", path, err)
		}
		c.kind = safetensorsLayout
	}
	return c
}

func hasPrefix(t *testing.T, path string, prefix []byte) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, len(prefix))
	n, _ := f.Read(b)
	return bytes.Equal(b[:n], prefix)
}

// arrayDir returns the array directory of tensor name in a dirLayout.
func (c checkpoint) arrayDir(t *testing.T, name string) string {
	t.Helper()
	rel, err := zarr.ArrayPath(name)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(c.path, filepath.FromSlash(rel))
}

// chunkFile returns the first chunk file of tensor name in a dirLayout.
func (c checkpoint) chunkFile(t *testing.T, name string) string {
	t.Helper()
	dir := c.arrayDir(t, name)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			return filepath.Join(dir, e.Name())
		}
	}
	t.Fatalf("the array %s has no chunk file", dir)
	return ""
}

// indexFile returns the one regular file at the top of a dirLayout.
func (c checkpoint) indexFile(t *testing.T) string {
	t.Helper()
	entries, err := os.ReadDir(c.path)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			files = append(files, e.Name())
		}
	}
	if len(files) != 1 {
		t.Fatalf("%s has files %v at its top, want exactly one index file", c.path, files)
	}
	return filepath.Join(c.path, files[0])
}

// payloadOffset returns the offset of the payload of tensor name, whose
// bytes are data, in a single-file checkpoint that stores payloads
// uncompressed. The synthetic weights make each payload unique.
func (c checkpoint) payloadOffset(t *testing.T, data []byte) int {
	t.Helper()
	b := readFile(t, c.path)
	at := bytes.Index(b, data)
	if at < 0 || bytes.LastIndex(b, data) != at {
		t.Fatalf("the payload of %s is not stored exactly once, uncompressed, in %s; teach faults/layout_test.go where it is", target, c.path)
	}
	return at
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// flipBit flips one bit of the byte at offset at in the file.
func flipBit(t *testing.T, path string, at int) {
	t.Helper()
	b := readFile(t, path)
	b[at] ^= 0x04
	writeFile(t, path, b)
}

// replaceAfter replaces the first occurrence of old after the first
// occurrence of anchor in the file with new, which has the same length.
func replaceAfter(t *testing.T, path string, anchor, old, new []byte) {
	t.Helper()
	if len(old) != len(new) {
		t.Fatalf("replacement %q and %q differ in length", old, new)
	}
	b := readFile(t, path)
	a := bytes.Index(b, anchor)
	if a < 0 {
		t.Fatalf("%q is not in %s", anchor, path)
	}
	i := bytes.Index(b[a:], old)
	if i < 0 {
		t.Fatalf("%q does not follow %q in %s", old, anchor, path)
	}
	copy(b[a+i:], new)
	writeFile(t, path, b)
}

// editJSON rewrites the JSON object in the file with edit.
func editJSON(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readFile(t, path), &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, b)
}

// editSafetensorsHeader rewrites the header of a safetensors file with
// edit, applied to the entry of tensor name, and keeps the payloads. The
// header stays valid; only its length may change.
func editSafetensorsHeader(t *testing.T, path, name string, edit func(map[string]any)) {
	t.Helper()
	b := readFile(t, path)
	n := binary.LittleEndian.Uint64(b)
	var header map[string]any
	if err := json.Unmarshal(b[8:8+n], &header); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	entry, ok := header[name].(map[string]any)
	if !ok {
		t.Fatalf("%s has no header entry for %s", path, name)
	}
	edit(entry)
	out, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	for len(out)%8 != 0 {
		out = append(out, ' ')
	}
	file := binary.LittleEndian.AppendUint64(nil, uint64(len(out)))
	file = append(append(file, out...), b[8+n:]...)
	writeFile(t, path, file)
}

// swapRanges swaps two equally long, non-overlapping byte ranges of the
// file.
func swapRanges(t *testing.T, path string, a, b, n int) {
	t.Helper()
	data := readFile(t, path)
	tmp := slices.Clone(data[a : a+n])
	copy(data[a:a+n], data[b:b+n])
	copy(data[b:b+n], tmp)
	writeFile(t, path, data)
}

// swapFiles swaps the names of two files.
func swapFiles(t *testing.T, a, b string) {
	t.Helper()
	tmp := a + ".swap"
	for _, r := range [][2]string{{a, tmp}, {b, a}, {tmp, b}} {
		if err := os.Rename(r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
}

func (k layoutKind) String() string {
	return [...]string{"directory of zarr arrays", "safetensors file", "zip archive"}[k]
}
