package t5x

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/vmihailenco/msgpack/v5"

	"ckptbench/tensor"
)

// obj is a msgpack map for tests, written in the order given: key,
// value, key, value...
type obj []any

// rawMsgpack is written verbatim.
type rawMsgpack []byte

// pack encodes v with obj maps in order.
func pack(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	var put func(any)
	put = func(v any) {
		var err error
		switch x := v.(type) {
		case obj:
			err = enc.EncodeMapLen(len(x) / 2)
			for i := 0; i+1 < len(x) && err == nil; i += 2 {
				put(x[i])
				put(x[i+1])
			}
		case []any:
			err = enc.EncodeArrayLen(len(x))
			for _, item := range x {
				put(item)
			}
		case rawMsgpack:
			buf.Write(x)
		default:
			err = enc.Encode(x)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	put(v)
	return buf.Bytes()
}

func spec(path, dtype string, shape ...any) obj {
	return obj{
		"driver", "zarr",
		"dtype", dtype,
		"kvstore", obj{"driver", "file", "path", path},
		"metadata", obj{"compressor", obj{"id", "gzip"}, "shape", shape, "chunks", shape},
	}
}

func index(target obj, extra ...any) obj {
	return append(obj{"version", 3, "optimizer", obj{"target", target}}, extra...)
}

func TestIndexRoundTrip(t *testing.T) {
	want := &Index{Version: IndexVersion, EveryChunkStored: true, Arrays: []Array{
		{Name: "b.x", Path: "b/x", DType: tensor.BFloat16, Shape: []int64{32000, 3200}, Chunks: []int64{8000, 3200}, Compressor: "gzip",
			CRC32C: []uint32{0, 1, 0x7fffffff, 0xffffffff}},
		// "a" parts come before and after "b": only tensor_order can keep
		// this order, because the tree groups a.y with a.z.
		{Name: "a.y", Path: "a/y", DType: tensor.Float32, Shape: []int64{}, Chunks: []int64{}, Compressor: "raw", CRC32C: []uint32{0xdeadbeef}},
		// A zero-size array has no chunks, so an empty list of checksums.
		{Name: "c", Path: "c", DType: tensor.Float16, Shape: []int64{0, 4}, Chunks: []int64{1, 4}, Compressor: "zstd", CRC32C: []uint32{}},
		{Name: "a.z", Path: "a/z", DType: tensor.Int64, Shape: []int64{3}, Compressor: "gzip"},
	}}
	b, err := want.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("index changed in a round trip (-want +got):\n%s", d)
	}
	// EquateEmpty hides the difference between no checksums and an empty
	// list of them.
	if got.Arrays[2].CRC32C == nil {
		t.Errorf("tensor c lost its empty list of checksums")
	}
	if got.Arrays[3].CRC32C != nil {
		t.Errorf("tensor a.z has checksums %v, but none were saved", got.Arrays[3].CRC32C)
	}
}

// TestIndexLayout checks the msgpack structure a generic decoder returns:
// T5X's version, the nested parameter tree under optimizer/target and
// TensorStore specs at its leaves.
func TestIndexLayout(t *testing.T) {
	ix := &Index{Version: IndexVersion, Arrays: []Array{
		{Name: "model.layers.0.mlp.up_proj.weight", Path: "model/layers/0/mlp/up_proj/weight", DType: tensor.Float16, Shape: []int64{8640, 3200}, Chunks: []int64{8640, 3200}, Compressor: "gzip"},
	}}
	b, err := ix.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := msgpack.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	if v, _ := toInt(generic["version"]); v != 3 {
		t.Errorf("version = %v, want 3", generic["version"])
	}
	node := generic["optimizer"].(map[string]any)["target"]
	for _, part := range []string{"model", "layers", "0", "mlp", "up_proj", "weight"} {
		m, ok := node.(map[string]any)
		if !ok {
			t.Fatalf("tree node above %q is %T, want a map", part, node)
		}
		node = m[part]
	}
	leaf := node.(map[string]any)
	want := map[string]any{
		"driver":  "zarr",
		"dtype":   "float16",
		"kvstore": map[string]any{"driver": "file", "path": "model/layers/0/mlp/up_proj/weight"},
	}
	for k, v := range want {
		if d := cmp.Diff(v, leaf[k]); d != "" {
			t.Errorf("spec %s differs (-want +got):\n%s", k, d)
		}
	}
	md := leaf["metadata"].(map[string]any)
	if d := cmp.Diff(map[string]any{"id": "gzip"}, md["compressor"]); d != "" {
		t.Errorf("compressor differs (-want +got):\n%s", d)
	}
	if _, ok := generic["chunk_crc32c"]; ok {
		t.Errorf("an index without checksums has the key chunk_crc32c: %v", generic["chunk_crc32c"])
	}
	if len(leaf) != 4 {
		t.Errorf("the spec has keys %v, want only driver, dtype, kvstore and metadata, which TensorStore opens", slices.Sorted(maps.Keys(leaf)))
	}

	ix.Arrays[0].CRC32C = []uint32{0xdeadbeef}
	if b, err = ix.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	generic = nil
	if err := msgpack.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	sums, ok := generic["chunk_crc32c"].(map[string]any)
	if !ok {
		t.Fatalf("chunk_crc32c is %T, want a map", generic["chunk_crc32c"])
	}
	list, ok := sums["model.layers.0.mlp.up_proj.weight"].([]any)
	if !ok || len(list) != 1 {
		t.Fatalf("chunk_crc32c of up_proj is %v, want a list of one checksum", sums["model.layers.0.mlp.up_proj.weight"])
	}
	if v, _ := toInt(list[0]); v != 0xdeadbeef {
		t.Errorf("checksum %v, want %d", list[0], 0xdeadbeef)
	}
}

func TestParseIndexErrors(t *testing.T) {
	good := spec("w", "float16", 2)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "EOF"},
		{"not a map", pack(t, []any{1}), "top level is a list"},
		{"no version", pack(t, obj{"optimizer", obj{"target", obj{}}}), `"version" is missing`},
		{"version 2", pack(t, obj{"version", 2, "optimizer", obj{"target", obj{}}}), "version 2 is not supported"},
		{"no optimizer", pack(t, obj{"version", 3}), `"optimizer" is missing`},
		{"target not a map", pack(t, obj{"version", 3, "optimizer", obj{"target", 5}}), `"target" is an integer`},
		{"inline value", pack(t, index(obj{"w", 1.5})), `parameter "w" is a float`},
		{"inline extension", pack(t, index(obj{"w", rawMsgpack{0xd4, 0x01, 0x00}})), "msgpack extension"},
		{"other driver", pack(t, index(obj{"w", obj{"driver", "n5", "kvstore", obj{"driver", "file", "path", "w"}, "metadata", obj{}}})), `driver is "n5"`},
		{"gcs kvstore", pack(t, index(obj{"w", obj{"driver", "zarr", "dtype", "float16", "kvstore", obj{"driver", "gcs", "path", "w"}, "metadata", obj{"shape", []any{1}}}})), `only local files`},
		{"absolute path", pack(t, index(obj{"w", spec("/etc/w", "float16", 2)})), "not a clean path inside"},
		{"escaping path", pack(t, index(obj{"w", spec("../w", "float16", 2)})), "not a clean path inside"},
		{"unclean path", pack(t, index(obj{"w", spec("a//w", "float16", 2)})), "not a clean path inside"},
		{"metadata file path", pack(t, index(obj{"w", spec("a/.zarray", "float16", 2)})), "starts with '.'"},
		{"index path", pack(t, index(obj{"w", spec("checkpoint", "float16", 2)})), "is the index file"},
		{"unknown dtype", pack(t, index(obj{"w", spec("w", "complex64", 2)})), `unknown dtype "complex64"`},
		{"negative shape", pack(t, index(obj{"w", spec("w", "float16", -1)})), "invalid shape"},
		{"overflowing shape", pack(t, index(obj{"w", spec("w", "float32", 1<<62, 4)})), "invalid shape"},
		{"shape not ints", pack(t, index(obj{"w", spec("w", "float16", "2")})), "metadata shape is"},
		{"chunks mismatch", pack(t, index(obj{"w", obj{"driver", "zarr", "dtype", "float16", "kvstore", obj{"driver", "file", "path", "w"}, "metadata", obj{"shape", []any{2}, "chunks", []any{1, 1}}}})), "has chunks [1 1] for shape [2]"},
		{"compressor without id", pack(t, index(obj{"w", obj{"driver", "zarr", "dtype", "float16", "kvstore", obj{"driver", "file", "path", "w"}, "metadata", obj{"shape", []any{2}, "compressor", obj{"level", 1}}}})), "compressor id is missing"},
		{"compressor id not a string", pack(t, index(obj{"w", obj{"driver", "zarr", "dtype", "float16", "kvstore", obj{"driver", "file", "path", "w"}, "metadata", obj{"shape", []any{2}, "compressor", obj{"id", 3}}}})), "compressor id is 3"},
		{"compressor not a map", pack(t, index(obj{"w", obj{"driver", "zarr", "dtype", "float16", "kvstore", obj{"driver", "file", "path", "w"}, "metadata", obj{"shape", []any{2}, "compressor", "gzip"}}})), "compressor is a string"},
		{"duplicate key", pack(t, index(obj{"w", good, "w", good})), `map key "w" appears twice`},
		{"integer key", pack(t, index(obj{7, good})), "keys must be strings"},
		{"empty name part", pack(t, index(obj{"a..b", good})), "empty part"},
		{"shared path", pack(t, index(obj{"a", spec("w", "float16", 2), "b", spec("w", "float16", 2)})), `share the array path "w"`},
		{"nested paths", pack(t, index(obj{"a", spec("x", "float16", 2), "b", spec("x/y", "float16", 2)})), "lies inside array"},
		{"nested names", pack(t, index(obj{"a", spec("x", "float16", 2), "a.b", spec("y", "float16", 2)})), "nested under tensor"},
		{"order missing a name", pack(t, index(obj{"a", spec("a", "float16", 2), "b", spec("b", "float16", 2)}, "tensor_order", []any{"a"})), "tensor_order"},
		{"order repeats a name", pack(t, index(obj{"a", spec("a", "float16", 2), "b", spec("b", "float16", 2)}, "tensor_order", []any{"a", "a"})), "appears twice"},
		{"order unknown name", pack(t, index(obj{"a", spec("a", "float16", 2)}, "tensor_order", []any{"z"})), `names "z"`},
		{"bad every_chunk_stored", pack(t, index(obj{}, "every_chunk_stored", 1)), "want a boolean"},
		{"checksums not a map", pack(t, index(obj{"w", good}, "chunk_crc32c", 5)), `"chunk_crc32c" is an integer`},
		{"checksums of unknown tensor", pack(t, index(obj{"w", good}, "chunk_crc32c", obj{"z", []any{1}})), `names tensor "z"`},
		{"checksums not a list", pack(t, index(obj{"w", good}, "chunk_crc32c", obj{"w", 7})), "want a list of CRC-32C values"},
		{"negative checksum", pack(t, index(obj{"w", good}, "chunk_crc32c", obj{"w", []any{-1}})), "from 0 to 2^32-1"},
		{"checksum above 32 bits", pack(t, index(obj{"w", good}, "chunk_crc32c", obj{"w", []any{int64(1) << 32}})), "from 0 to 2^32-1"},
		{"float checksum", pack(t, index(obj{"w", good}, "chunk_crc32c", obj{"w", []any{1.5}})), "from 0 to 2^32-1"},
		{"too many checksums", pack(t, index(obj{"w", good}, "chunk_crc32c", obj{"w", []any{1, 2}})), "records 2 chunk checksums, but shape [2] in chunks [2] has 1"},
		{"checksums without chunks", pack(t, index(obj{"w", obj{"driver", "zarr", "dtype", "float16", "kvstore", obj{"driver", "file", "path", "w"}, "metadata", obj{"shape", []any{2}}}}, "chunk_crc32c", obj{"w", []any{1}})), "no chunk shape"},
		{"checksums with zero chunks", pack(t, index(obj{"w", spec("w", "float16", 0)}, "chunk_crc32c", obj{"w", []any{}})), "dimension below 1"},
		{"trailing data", append(pack(t, index(obj{})), 0xc0), "data after"},
		{"text file", []byte("{\n"), "top level is an integer"},
		{"truncated", pack(t, index(obj{"w", good}))[:40], "EOF"},
		{"deep nesting", bytes.Repeat([]byte{0x91}, 10000), "nested deeper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseIndex(tt.data)
			if err == nil {
				t.Fatalf("ParseIndex succeeded; want an error containing %q", tt.want)
			}
			if !errors.Is(err, ErrIndex) {
				t.Errorf("error %q does not wrap ErrIndex", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// TestParseIndexForeign reads the index layouts of other writers: T5X's
// nested tree with optimizer state and no tensor order, a flat tree whose
// keys are whole dotted names, and TensorStore's old spec with the path
// outside the kvstore.
func TestParseIndexForeign(t *testing.T) {
	data := pack(t, obj{
		"version", 3,
		"optimizer", obj{
			"state", obj{"step", 10, "param_states", obj{"x", rawMsgpack{0xd4, 0x01, 0x00}}},
			"target", obj{
				"encoder", obj{"layers_0", obj{"kernel", spec("target.encoder.layers_0.kernel", "bfloat16", 4, 4)}},
				"decoder.logits", spec("target.decoder.logits", "float32", 8),
				"old", obj{"driver", "zarr", "dtype", "float16", "path", "old_style", "metadata", obj{"shape", []any{2}}},
			},
		},
	})
	got, err := ParseIndex(data)
	if err != nil {
		t.Fatal(err)
	}
	want := []Array{
		{Name: "encoder.layers_0.kernel", Path: "target.encoder.layers_0.kernel", DType: tensor.BFloat16, Shape: []int64{4, 4}, Chunks: []int64{4, 4}, Compressor: "gzip"},
		{Name: "decoder.logits", Path: "target.decoder.logits", DType: tensor.Float32, Shape: []int64{8}, Chunks: []int64{8}, Compressor: "gzip"},
		{Name: "old", Path: "old_style", DType: tensor.Float16, Shape: []int64{2}, Compressor: "raw"},
	}
	if d := cmp.Diff(want, got.Arrays); d != "" {
		t.Errorf("arrays differ (-want +got):\n%s", d)
	}
	if got.EveryChunkStored {
		t.Error("EveryChunkStored is set for an index that does not record it")
	}
}

// seedFiles returns the index files under testdata/t5x: valid_* must
// parse, invalid_* must not.
func seedFiles(t testing.TB) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "..", "testdata", "t5x", "*.msgpack"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no seed indexes in testdata/t5x (%v)", err)
	}
	seeds := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		seeds[filepath.Base(p)] = b
	}
	return seeds
}

func TestParseIndexSeeds(t *testing.T) {
	wantArrays := map[string]int{
		"valid_go_tiny.msgpack":             22, // the tiny model and a scalar, before checksums
		"valid_go_tiny_crc32c.msgpack":      22, // the same with chunk checksums
		"valid_tensorstore_awkward.msgpack": 16,
		"valid_peer_flat.msgpack":           21,
	}
	// Whether each valid seed records checksums, for every array or none.
	wantChecksums := map[string]bool{"valid_go_tiny_crc32c.msgpack": true}
	for name, b := range seedFiles(t) {
		t.Run(name, func(t *testing.T) {
			ix, err := ParseIndex(b)
			switch {
			case strings.HasPrefix(name, "valid_"):
				if err != nil {
					t.Fatal(err)
				}
				if n, ok := wantArrays[name]; ok && len(ix.Arrays) != n {
					t.Errorf("%d arrays, want %d", len(ix.Arrays), n)
				}
				for _, a := range ix.Arrays {
					if got := a.CRC32C != nil; got != wantChecksums[name] {
						t.Errorf("tensor %s: has checksums = %v, want %v", a.Name, got, wantChecksums[name])
					}
				}
			case strings.HasPrefix(name, "invalid_"):
				if err == nil {
					t.Fatal("ParseIndex succeeded on an invalid seed")
				}
			default:
				t.Fatalf("seed name must start with valid_ or invalid_")
			}
		})
	}
}

// FuzzParseIndex checks that ParseIndex never panics and that every
// index it accepts survives MarshalBinary and ParseIndex unchanged.
func FuzzParseIndex(f *testing.F) {
	for _, b := range seedFiles(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, err := ParseIndex(data)
		if err != nil {
			if !errors.Is(err, ErrIndex) {
				t.Fatalf("error %q does not wrap ErrIndex", err)
			}
			return
		}
		b, err := ix.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary of a parsed index: %v", err)
		}
		again, err := ParseIndex(b)
		if err != nil {
			t.Fatalf("ParseIndex of a marshaled index: %v", err)
		}
		if d := cmp.Diff(ix, again, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("index changed in a round trip (-first +second):\n%s", d)
		}
	})
}
