package zarr

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ckptbench/iox"
	"ckptbench/model"
	"ckptbench/tensor"
	"ckptbench/tensor/tensortest"
)

func newFormat(t *testing.T, opts Options) *Format {
	t.Helper()
	f, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func load(t *testing.T, f *Format, path string) *tensor.StateDict {
	t.Helper()
	sd, err := f.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sd.Close() })
	return sd
}

func TestSaveLoadRoundTrip(t *testing.T) {
	for _, codec := range []string{"raw", "gzip", "zstd"} {
		for _, dtype := range []tensor.DType{tensor.Float16, tensor.BFloat16, tensor.Float32} {
			t.Run(codec+"/"+dtype.String(), func(t *testing.T) {
				f := newFormat(t, Options{Codec: codec})
				if f.Name() != "zarr" || f.Codec() != codec {
					t.Errorf("Name, Codec = %q, %q; want zarr, %s", f.Name(), f.Codec(), codec)
				}
				want := model.Synthetic(model.Tiny.Config, dtype, 1)
				path := filepath.Join(t.TempDir(), "ckpt")
				if err := f.Save(path, want); err != nil {
					t.Fatal(err)
				}
				tensortest.Equal(t, want, load(t, f, path))
			})
		}
	}
}

// TestSaveMultiChunk saves with a chunk limit small enough to split the
// tiny model's matrices into row blocks whose last block is an edge chunk.
func TestSaveMultiChunk(t *testing.T) {
	f := newFormat(t, Options{Codec: "zstd", MaxChunkBytes: 3000})
	want := model.Synthetic(model.Tiny.Config, tensor.Float16, 2)
	path := filepath.Join(t.TempDir(), "ckpt")
	if err := f.Save(path, want); err != nil {
		t.Fatal(err)
	}
	md, err := ReadMetadata(filepath.Join(path, "model", "embed_tokens", "weight"))
	if err != nil {
		t.Fatal(err)
	}
	// 3000 bytes hold 23 rows of 64 float16 values; 320 rows make 14 chunks.
	if !slices.Equal(md.Chunks, []int64{23, 64}) {
		t.Errorf("embedding chunks = %v, want [23 64]", md.Chunks)
	}
	if _, err := os.Stat(filepath.Join(path, "model", "embed_tokens", "weight", "13.0")); err != nil {
		t.Errorf("edge chunk 13.0: %v", err)
	}
	tensortest.Equal(t, want, load(t, f, path))
}

// TestSaveLayout checks the files Save leaves: the index, and for each
// tensor a .zarray and its chunk at the documented path, nothing else,
// and no temporary directory beside the checkpoint.
func TestSaveLayout(t *testing.T) {
	sd := &tensor.StateDict{}
	sd.Add(
		tensor.New("model.layers.0.mlp.up_proj.weight", tensor.Float16, 4, 3),
		tensor.New("model.norm.weight", tensor.Float16, 3),
		tensor.New("odd name/with.slash", tensor.Int32, 2),
		tensor.New("scalar", tensor.Float32),
		tensor.New("empty", tensor.Uint8, 0, 4),
	)
	parent := t.TempDir()
	path := filepath.Join(parent, "ckpt")
	if err := newFormat(t, Options{Codec: "gzip"}).Save(path, sd); err != nil {
		t.Fatal(err)
	}
	var got []string
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(path, p)
			got = append(got, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"empty/.zarray",
		"index.json",
		"model/layers/0/mlp/up_proj/weight/.zarray",
		"model/layers/0/mlp/up_proj/weight/0.0",
		"model/norm/weight/.zarray",
		"model/norm/weight/0",
		"odd%20name%2Fwith/slash/.zarray",
		"odd%20name%2Fwith/slash/0",
		"scalar/.zarray",
		"scalar/0",
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("checkpoint files:\n got %q\nwant %q", got, want)
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("parent directory contains %d entries, want only the checkpoint", len(entries))
	}
	tensortest.Equal(t, sd, load(t, newFormat(t, Options{}), path))
}

func TestSaveOverwrites(t *testing.T) {
	f := newFormat(t, Options{Codec: "raw"})
	path := filepath.Join(t.TempDir(), "ckpt")
	if err := f.Save(path, model.Synthetic(model.Tiny.Config, tensor.Float16, 1)); err != nil {
		t.Fatal(err)
	}
	want := model.Synthetic(model.Tiny.Config, tensor.Float32, 2)
	if err := f.Save(path, want); err != nil {
		t.Fatal(err)
	}
	tensortest.Equal(t, want, load(t, f, path))
}

// TestFailedSaveKeepsOld fails a save after it has written files, with a
// codec that cannot encode, and checks that the old checkpoint is intact
// and no temporary directory is left.
func TestFailedSaveKeepsOld(t *testing.T) {
	parent := t.TempDir()
	path := filepath.Join(parent, "ckpt")
	f := newFormat(t, Options{Codec: "gzip"})
	old := model.Synthetic(model.Tiny.Config, tensor.Float16, 1)
	if err := f.Save(path, old); err != nil {
		t.Fatal(err)
	}
	broken := &Format{codec: bz2Codec{level: 1}, maxChunk: DefaultMaxChunkBytes}
	err := broken.Save(path, model.Synthetic(model.Tiny.Config, tensor.Float16, 2))
	if !errors.Is(err, ErrUnsupportedCodec) {
		t.Fatalf("Save with bz2 = %v, want ErrUnsupportedCodec", err)
	}
	tensortest.Equal(t, old, load(t, f, path))
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		if iox.IsTemp(e.Name()) {
			t.Errorf("temporary directory %s left behind", e.Name())
		}
	}
}

func TestSaveRejectsNames(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"a..b"}, "empty dot-separated part"},
		{[]string{".a"}, "empty dot-separated part"},
		{[]string{"a.b", "a.b.c"}, "inside the array of tensor"},
		{[]string{"x.y.z", "x.y"}, "inside the array of tensor"},
	} {
		sd := &tensor.StateDict{}
		for _, n := range tc.names {
			sd.Add(tensor.New(n, tensor.Float16, 2))
		}
		path := filepath.Join(t.TempDir(), "ckpt")
		err := newFormat(t, Options{}).Save(path, sd)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Save(%q) = %v, want an error containing %q", tc.names, err, tc.want)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Save(%q) failed but created %s", tc.names, path)
		}
	}
}

func TestNewRejectsOptions(t *testing.T) {
	if _, err := New(Options{Codec: "blosc"}); !errors.Is(err, ErrUnsupportedCodec) {
		t.Errorf("New(blosc) = %v, want ErrUnsupportedCodec", err)
	}
	if _, err := New(Options{MaxChunkBytes: -1}); err == nil {
		t.Error("New with a negative chunk limit succeeded")
	}
}

func TestArrayPath(t *testing.T) {
	for name, want := range map[string]string{
		"model.layers.0.mlp.up_proj.weight": "model/layers/0/mlp/up_proj/weight",
		"lm_head.weight":                    "lm_head/weight",
		"a/b":                               "a%2Fb",
		"%":                                 "%25",
		"..":                                "",
		"":                                  "",
	} {
		got, err := ArrayPath(name)
		if want == "" {
			if err == nil {
				t.Errorf("ArrayPath(%q) = %q, want an error", name, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("ArrayPath(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
}

// TestLoadBadInput damages a saved checkpoint in one way per case and
// checks that Load fails with an error naming the tensor and the file.
func TestLoadBadInput(t *testing.T) {
	const name = "model.layers.1.self_attn.k_proj.weight"
	const rel = "model/layers/1/self_attn/k_proj/weight"
	rewriteZarray := func(edit func(m map[string]any)) func(t *testing.T, root string) {
		return func(t *testing.T, root string) {
			p := filepath.Join(root, rel, ".zarray")
			var m map[string]any
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			edit(m)
			if b, err = json.Marshal(m); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	truncate := func(file string, keep func(size int64) int64) func(t *testing.T, root string) {
		return func(t *testing.T, root string) {
			p := filepath.Join(root, rel, file)
			info, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(p, keep(info.Size())); err != nil {
				t.Fatal(err)
			}
		}
	}
	// One saved checkpoint per codec; each case damages a copy of it.
	saved := map[string]string{}
	for _, codec := range []string{"raw", "gzip", "zstd"} {
		saved[codec] = filepath.Join(t.TempDir(), codec)
		if err := newFormat(t, Options{Codec: codec}).Save(saved[codec], model.Synthetic(model.Tiny.Config, tensor.Float16, 1)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		codec  string
		damage func(t *testing.T, root string)
		is     error    // an error the result must wrap, if any
		want   []string // substrings of the error
	}{
		{"damaged zarray", "raw", truncate(".zarray", func(n int64) int64 { return n / 2 }),
			ErrMetadata, []string{name, rel + "/.zarray"}},
		{"missing zarray", "raw", func(t *testing.T, root string) { os.Remove(filepath.Join(root, rel, ".zarray")) },
			fs.ErrNotExist, []string{name, rel + "/.zarray"}},
		{"truncated raw chunk", "raw", truncate("0.0", func(n int64) int64 { return n - 1 }),
			ErrChunkSize, []string{name, rel + "/0.0"}},
		{"truncated gzip chunk", "gzip", truncate("0.0", func(n int64) int64 { return n / 2 }),
			nil, []string{name, rel + "/0.0"}},
		{"truncated zstd chunk", "zstd", truncate("0.0", func(n int64) int64 { return n / 2 }),
			nil, []string{name, rel + "/0.0"}},
		{"empty gzip chunk", "gzip", truncate("0.0", func(int64) int64 { return 0 }),
			nil, []string{name, rel + "/0.0"}},
		{"missing chunk", "gzip", func(t *testing.T, root string) { os.Remove(filepath.Join(root, rel, "0.0")) },
			ErrMissingChunk, []string{name, rel + "/0.0"}},
		{"dtype differs from index", "raw", rewriteZarray(func(m map[string]any) { m["dtype"] = "<f4" }),
			nil, []string{name, rel + "/.zarray", "dtype <f4", "index lists float16"}},
		{"shape differs from index", "raw", rewriteZarray(func(m map[string]any) { m["shape"] = []int{64, 32} }),
			nil, []string{name, rel + "/.zarray", "shape [64 32]", "index lists [32 64]"}},
		{"blosc compressor", "raw", rewriteZarray(func(m map[string]any) {
			m["compressor"] = map[string]any{"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1}
		}), ErrUnsupportedCodec, []string{name, "unsupported codec blosc in array", "re-save with raw, gzip or zstd"}},
		{"chunk of another size", "raw", rewriteZarray(func(m map[string]any) { m["chunks"] = []int{16, 64} }),
			ErrChunkSize, []string{name, rel + "/0.0"}},
		{"missing index", "raw", func(t *testing.T, root string) { os.Remove(filepath.Join(root, IndexFile)) },
			nil, []string{IndexFile, "not a complete zarr checkpoint"}},
		{"index escapes checkpoint", "raw", editIndex(func(idx *Index) { idx.Tensors[11].Path = "../../etc" }),
			nil, []string{IndexFile, name, "not inside the checkpoint"}},
		{"index lists a tensor twice", "raw", editIndex(func(idx *Index) { idx.Tensors[11].Name = idx.Tensors[10].Name }),
			nil, []string{IndexFile, "listed twice"}},
		{"index of another version", "raw", editIndex(func(idx *Index) { idx.Version = 2 }),
			nil, []string{IndexFile, "version 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFormat(t, Options{Codec: tc.codec})
			root := filepath.Join(t.TempDir(), "ckpt")
			if err := os.CopyFS(root, os.DirFS(saved[tc.codec])); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, root)
			sd, err := f.Load(root)
			if err == nil {
				sd.Close()
				t.Fatal("Load succeeded")
			}
			t.Log(err)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q does not wrap %v", err, tc.is)
			}
			for _, s := range tc.want {
				if !strings.Contains(filepath.ToSlash(err.Error()), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

// editIndex returns a damage function that rewrites the checkpoint's index.
func editIndex(edit func(*Index)) func(t *testing.T, root string) {
	return func(t *testing.T, root string) {
		p := filepath.Join(root, IndexFile)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var idx Index
		if err := json.Unmarshal(b, &idx); err != nil {
			t.Fatal(err)
		}
		if idx.Tensors[11].Name != "model.layers.1.self_attn.k_proj.weight" {
			t.Fatalf("index entry 11 is %s; the test expects the tiny model's order", idx.Tensors[11].Name)
		}
		edit(&idx)
		if b, err = json.Marshal(idx); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
