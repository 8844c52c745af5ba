package t5x

import (
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"ckptbench/formats"
	"ckptbench/formats/zarr"
	"ckptbench/model"
	"ckptbench/tensor"
	"ckptbench/tensor/tensortest"
)

// naiveChunkChecksums returns the CRC-32C of each chunk of a C-order
// array of shape, in chunks of the given shape: the chunk's elements
// inside the array, visited one element at a time in C order.
func naiveChunkChecksums(data []byte, shape, chunks []int64, size int64) []uint32 {
	table := crc32.MakeTable(crc32.Castagnoli)
	g := newGrid(shape, chunks)
	sums := make([]uint32, g.numChunks())
	for linear := range g.numChunks() {
		origin, extent := g.region(g.chunkIndex(linear))
		var region []byte
		at := make([]int64, len(extent))
		for n := product(extent); n > 0; n-- {
			off := int64(0)
			for i := range shape {
				off = off*shape[i] + origin[i] + at[i]
			}
			region = append(region, data[off*size:(off+1)*size]...)
			for i := len(at) - 1; i >= 0; i-- {
				if at[i]++; at[i] < extent[i] {
					break
				}
				at[i] = 0
			}
		}
		sums[linear] = crc32.Checksum(region, table)
	}
	return sums
}

// readTestIndex parses the index of the checkpoint at path.
func readTestIndex(t *testing.T, path string) *Index {
	t.Helper()
	ix, err := readIndex(path)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

// flipByte inverts the byte at off in the file at path.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// verifyingCopy returns f's copy that verifies on load.
func verifyingCopy(t *testing.T, f *Format) *Format {
	t.Helper()
	g, ok := f.WithVerifyOnLoad().(*Format)
	if !ok {
		t.Fatalf("WithVerifyOnLoad returned %T, want *Format", f.WithVerifyOnLoad())
	}
	if g.Name() != f.Name() || g.Codec() != f.Codec() {
		t.Errorf("the verifying copy is %s/%s, want %s/%s", g.Name(), g.Codec(), f.Name(), f.Codec())
	}
	return g
}

// requireChecksumError checks that err reports a checksum mismatch in
// the chunk file of tensor name.
func requireChecksumError(t *testing.T, what string, err error, name, file string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s accepted the damaged checkpoint", what)
	}
	if !errors.Is(err, formats.ErrChecksum) {
		t.Errorf("%s error does not wrap formats.ErrChecksum: %v", what, err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
		t.Errorf("%s error does not name tensor %s: %v", what, name, err)
	}
	if !strings.Contains(err.Error(), file) {
		t.Errorf("%s error does not name the chunk file %s: %v", what, file, err)
	}
}

// TestSaveRecordsChunkChecksums checks the recorded checksums against a
// naive computation, with chunks that are contiguous in the tensor, chunks
// that are column blocks (gathered before writing) and zero-size tensors.
func TestSaveRecordsChunkChecksums(t *testing.T) {
	t.Parallel()
	for _, codec := range []string{"raw", "gzip", "zstd"} {
		for _, chunkBytes := range []int64{0, 256} {
			t.Run(fmt.Sprintf("codec=%s/chunk=%d", codec, chunkBytes), func(t *testing.T) {
				sd := awkwardStateDict()
				f, err := New(Options{Codec: codec, ChunkBytes: chunkBytes})
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(t.TempDir(), "checkpoint_1")
				if err := f.Save(path, sd); err != nil {
					t.Fatal(err)
				}
				ix := readTestIndex(t, path)
				for i, a := range ix.Arrays {
					x := sd.Tensors[i]
					want := naiveChunkChecksums(x.Data, x.Shape, a.Chunks, int64(x.DType.Size()))
					if a.CRC32C == nil {
						t.Errorf("tensor %s: the index records no checksums", a.Name)
						continue
					}
					if !slices.Equal(a.CRC32C, want) {
						t.Errorf("tensor %s in chunks %v: checksums %08x, want %08x", a.Name, a.Chunks, a.CRC32C, want)
					}
					if len(a.CRC32C) == 1 && a.CRC32C[0] != crc32.Checksum(x.Data, crc32.MakeTable(crc32.Castagnoli)) {
						t.Errorf("tensor %s is one chunk, but its checksum %08x is not the CRC-32C of its bytes", a.Name, a.CRC32C[0])
					}
				}
				if err := f.Verify(path); err != nil {
					t.Errorf("Verify of an intact checkpoint: %v", err)
				}
				got, err := verifyingCopy(t, f).Load(path)
				if err != nil {
					t.Fatalf("Load with verification of an intact checkpoint: %v", err)
				}
				defer got.Close()
				tensortest.Equal(t, sd, got)
			})
		}
	}
}

// TestVerifyOnLoadIntact loads intact checkpoints with verification on,
// through every read path: straight into the tensor (raw), decoded into
// the tensor (gzip, zstd), through a buffer (column-block chunks) and
// with a dtype cast.
func TestVerifyOnLoadIntact(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		opts Options
	}{
		{"raw", Options{Codec: "raw"}},
		{"raw/buffered", Options{Codec: "raw", BufferedRead: true}},
		{"gzip", Options{Codec: "gzip", EncodeEveryChunk: true}},
		{"zstd", Options{Codec: "zstd"}},
		{"raw/column blocks", Options{Codec: "raw", ChunkBytes: 2048}},
		{"gzip/column blocks", Options{Codec: "gzip", ChunkBytes: 2048}},
		{"raw/restore float32", Options{Codec: "raw", RestoreDType: tensor.Float32}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.opts.VerifyOnLoad = true
			f, err := New(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			want := model.Synthetic(model.Tiny.Config, tensor.BFloat16, 5)
			path := filepath.Join(t.TempDir(), "checkpoint_1")
			if err := f.Save(path, want); err != nil {
				t.Fatal(err)
			}
			got, err := f.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			if c.opts.RestoreDType == tensor.Invalid {
				tensortest.Equal(t, want, got)
			} else if got.Tensors[0].DType != c.opts.RestoreDType {
				t.Errorf("loaded %s, want %s", got.Tensors[0].DType, c.opts.RestoreDType)
			}
		})
	}
}

// TestChecksumDetectsDamage damages one chunk so that it still decodes
// to the right size, and checks that Load without verification misses
// it, while Verify and Load with verification report the tensor and the
// chunk file.
func TestChecksumDetectsDamage(t *testing.T) {
	t.Parallel()
	const (
		q    = "model.layers.0.self_attn.q_proj.weight"
		o    = "model.layers.0.self_attn.o_proj.weight"
		qDir = "model/layers/0/self_attn/q_proj/weight"
		oDir = "model/layers/0/self_attn/o_proj/weight"
	)
	tests := []struct {
		name  string
		opts  Options
		chunk string // the damaged chunk file under qDir
		// damage damages the chunk file of q in the checkpoint at path.
		damage func(t *testing.T, path string)
	}{
		{"raw bit flip", Options{Codec: "raw"}, "0.0", func(t *testing.T, path string) {
			flipByte(t, filepath.Join(path, qDir, "0.0"), 1000)
		}},
		// 2048-byte chunks cut q_proj into [32, 32] blocks, so chunk 0.1
		// is gathered on save and copied through a buffer on load.
		{"raw bit flip, column block", Options{Codec: "raw", ChunkBytes: 2048}, "0.1", func(t *testing.T, path string) {
			flipByte(t, filepath.Join(path, qDir, "0.1"), 100)
		}},
		{"raw bit flip, restore float32", Options{Codec: "raw", RestoreDType: tensor.Float32}, "0.0", func(t *testing.T, path string) {
			flipByte(t, filepath.Join(path, qDir, "0.0"), 8000)
		}},
		{"gzip swapped with a twin", Options{Codec: "gzip"}, "0.0", func(t *testing.T, path string) {
			swapTestFiles(t, filepath.Join(path, qDir, "0.0"), filepath.Join(path, oDir, "0.0"))
		}},
		{"zstd swapped with a twin", Options{Codec: "zstd", EncodeEveryChunk: true}, "0.0", func(t *testing.T, path string) {
			swapTestFiles(t, filepath.Join(path, qDir, "0.0"), filepath.Join(path, oDir, "0.0"))
		}},
		{"gzip rewritten with a changed byte", Options{Codec: "gzip"}, "0.0", func(t *testing.T, path string) {
			// A valid gzip stream with its own CRC-32 over the changed
			// data, so only this package's checksum can notice.
			rewriteGzip(t, filepath.Join(path, qDir, "0.0"), 64*64*2, func(b []byte) { b[3000] ^= 0x01 })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			want := model.Synthetic(model.Tiny.Config, tensor.Float16, 9)
			path := filepath.Join(t.TempDir(), "checkpoint_1")
			if err := f.Save(path, want); err != nil {
				t.Fatal(err)
			}
			tt.damage(t, path)
			file := filepath.Join(path, qDir, tt.chunk)

			got, err := f.Load(path)
			if err != nil {
				t.Fatalf("Load without verification failed, so the damage is not one only a checksum finds: %v", err)
			}
			got.Close()

			requireChecksumError(t, "Verify", f.Verify(path), q, file)
			sd, err := verifyingCopy(t, f).Load(path)
			if err == nil {
				sd.Close()
			}
			requireChecksumError(t, "Load with verification", err, q, file)
			if strings.Contains(tt.name, "swapped") {
				// Both report every damaged chunk, so the twin's too.
				twin := filepath.Join(path, oDir, "0.0")
				requireChecksumError(t, "Verify", f.Verify(path), o, twin)
				requireChecksumError(t, "Load with verification", err, o, twin)
			}
		})
	}
}

// swapTestFiles exchanges the contents of two files.
func swapTestFiles(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a, y, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, x, 0o644); err != nil {
		t.Fatal(err)
	}
}

// rewriteGzip decodes the gzip chunk at path, of size bytes decoded, lets
// edit change the decoded bytes and writes them back as a valid gzip
// stream.
func rewriteGzip(t *testing.T, path string, size int, edit func([]byte)) {
	t.Helper()
	codec, err := zarr.CodecFor("gzip")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := codec.Decode(make([]byte, size), b)
	if err != nil {
		t.Fatal(err)
	}
	edit(plain)
	if b, err = codec.Encode(nil, plain); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyEdgeChunks checks arrays whose shape the chunks do not divide,
// as other writers produce: the checksum covers each edge chunk's part
// inside the array, so damage there is found and damage to the padding
// is not.
func TestVerifyEdgeChunks(t *testing.T) {
	t.Parallel()
	for _, codec := range []string{"raw", "gzip"} {
		t.Run(codec, func(t *testing.T) {
			f, err := New(Options{Codec: codec})
			if err != nil {
				t.Fatal(err)
			}
			c, err := zarr.CodecFor(codec)
			if err != nil {
				t.Fatal(err)
			}
			x := tensor.New("edge.weight", tensor.Float16, 7, 13)
			copy(x.Data, randomBytes(len(x.Data)))
			chunks := []int64{4, 5}
			path := filepath.Join(t.TempDir(), "checkpoint_1")
			md, err := zarr.NewMetadata(x.DType, x.Shape, chunks, c)
			if err != nil {
				t.Fatal(err)
			}
			if err := zarr.WriteArray(filepath.Join(path, "edge", "weight"), md, c, x.Data); err != nil {
				t.Fatal(err)
			}
			ix := &Index{Version: IndexVersion, EveryChunkStored: true, Arrays: []Array{{
				Name: x.Name, Path: "edge/weight", DType: x.DType, Shape: x.Shape, Chunks: chunks, Compressor: codec,
				CRC32C: naiveChunkChecksums(x.Data, x.Shape, chunks, 2),
			}}}
			b, err := ix.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(path, IndexFile), b, 0o644); err != nil {
				t.Fatal(err)
			}
			want := &tensor.StateDict{Tensors: []*tensor.Tensor{x}}
			loadVerified := func() error {
				sd, err := verifyingCopy(t, f).Load(path)
				if err != nil {
					return err
				}
				defer sd.Close()
				tensortest.Equal(t, want, sd)
				return nil
			}
			if err := f.Verify(path); err != nil {
				t.Fatalf("Verify of intact edge chunks: %v", err)
			}
			if err := loadVerified(); err != nil {
				t.Fatalf("Load with verification of intact edge chunks: %v", err)
			}

			// Chunk 1.2 covers rows 4-6 and column 10-12 of a 4x5 chunk:
			// element (0, 0) is inside the array, element (3, 4) is
			// padding.
			chunk := filepath.Join(path, "edge", "weight", "1.2")
			damage := func(elem int) {
				if codec == "raw" {
					flipByte(t, chunk, int64(elem*2))
				} else {
					rewriteGzip(t, chunk, 4*5*2, func(b []byte) { b[elem*2] ^= 0xff })
				}
			}
			damage(3*5 + 4)
			if err := f.Verify(path); err != nil {
				t.Errorf("Verify after damage to an edge chunk's padding: %v", err)
			}
			if err := loadVerified(); err != nil {
				t.Errorf("Load with verification after damage to an edge chunk's padding: %v", err)
			}
			damage(0)
			requireChecksumError(t, "Verify", f.Verify(path), x.Name, chunk)
			requireChecksumError(t, "Load with verification", loadVerified(), x.Name, chunk)
		})
	}
}

// TestVerifyWithoutChecksums checks indexes without checksums, as saved
// before they were added: Load still reads them, while Verify and Load
// with verification say that none are recorded.
func TestVerifyWithoutChecksums(t *testing.T) {
	t.Parallel()
	f, path, want := savedTiny(t, Options{Codec: "raw"})
	editIndex(t, path, func(ix *Index) {
		for i := range ix.Arrays {
			ix.Arrays[i].CRC32C = nil
		}
	})
	got, err := f.Load(path)
	if err != nil {
		t.Fatalf("Load of an index without checksums: %v", err)
	}
	tensortest.Equal(t, want, got)
	got.Close()

	indexPath := filepath.Join(path, IndexFile)
	for what, err := range map[string]error{
		"Verify":                 f.Verify(path),
		"Load with verification": loadErr(verifyingCopy(t, f), path),
	} {
		if err == nil {
			t.Errorf("%s of an index without checksums succeeded", what)
			continue
		}
		if !strings.Contains(err.Error(), "records no checksums") || !strings.Contains(err.Error(), indexPath) {
			t.Errorf("%s error does not say that %s records no checksums: %v", what, indexPath, err)
		}
		if errors.Is(err, formats.ErrChecksum) {
			t.Errorf("%s error wraps ErrChecksum, but no checksum differs: %v", what, err)
		}
	}
}

// loadErr loads path with f and returns the error.
func loadErr(f *Format, path string) error {
	sd, err := f.Load(path)
	if err == nil {
		sd.Close()
	}
	return err
}

// TestVerifyRejectsInconsistentChecksums covers indexes whose checksums
// do not fit the arrays on disk: one array without checksums, a .zarray
// with other chunks, and a missing chunk in an index that does not claim
// every chunk was stored.
func TestVerifyRejectsInconsistentChecksums(t *testing.T) {
	t.Parallel()
	const (
		q    = "model.layers.0.self_attn.q_proj.weight"
		qDir = "model/layers/0/self_attn/q_proj/weight"
	)
	tests := []struct {
		name   string
		damage func(t *testing.T, path string)
		file   string // under the checkpoint, which the error must name
		want   string
	}{
		{"one array without checksums", func(t *testing.T, path string) {
			editIndex(t, path, func(ix *Index) {
				for i := range ix.Arrays {
					if ix.Arrays[i].Name == q {
						ix.Arrays[i].CRC32C = nil
					}
				}
			})
		}, qDir + "/.zarray", "records no checksums for the array"},
		{"rechunked array", func(t *testing.T, path string) {
			editZarray(t, filepath.Join(path, qDir), "chunks", []int{32, 64})
		}, qDir + "/.zarray", "has chunks [32 64], but the index records checksums for chunks [64 64]"},
		{"missing chunk", func(t *testing.T, path string) {
			editIndex(t, path, func(ix *Index) { ix.EveryChunkStored = false })
			os.Remove(filepath.Join(path, qDir, "0.0"))
		}, qDir + "/0.0", "records a checksum for it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, path, _ := savedTiny(t, Options{Codec: "raw"})
			tt.damage(t, path)
			file := filepath.Join(path, filepath.FromSlash(tt.file))
			for what, err := range map[string]error{
				"Verify":                 f.Verify(path),
				"Load with verification": loadErr(verifyingCopy(t, f), path),
			} {
				if err == nil {
					t.Errorf("%s succeeded; want an error containing %q", what, tt.want)
					continue
				}
				for _, s := range []string{tt.want, file, q} {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("%s error does not contain %q: %v", what, s, err)
					}
				}
			}
		})
	}
}

// TestVerifyReportsDamage checks that Verify names the file for damage
// that any load would find, and reports every damaged tensor.
func TestVerifyReportsDamage(t *testing.T) {
	t.Parallel()
	const (
		q    = "model/layers/0/self_attn/q_proj/weight"
		k    = "model/layers/1/self_attn/k_proj/weight"
		qErr = `"model.layers.0.self_attn.q_proj.weight"`
		kErr = `"model.layers.1.self_attn.k_proj.weight"`
	)
	tests := []struct {
		name   string
		codec  string
		damage func(t *testing.T, path string)
		want   []string // substrings of the error, with the checkpoint's path for %s
	}{
		{"truncated index", "raw", func(t *testing.T, path string) {
			os.Truncate(filepath.Join(path, IndexFile), 100)
		}, []string{"%s/checkpoint", "invalid t5x index"}},
		{"missing index", "raw", func(t *testing.T, path string) {
			os.Remove(filepath.Join(path, IndexFile))
		}, []string{"%s/checkpoint", "not a complete t5x checkpoint"}},
		{"two damaged tensors", "raw", func(t *testing.T, path string) {
			os.Truncate(filepath.Join(path, q, "0.0"), 10)
			flipByte(t, filepath.Join(path, k, "0.0"), 5)
		}, []string{qErr, "%s/" + q + "/0.0", "is 10 bytes", kErr, "%s/" + k + "/0.0", "checksum mismatch"}},
		{"corrupt gzip and a damaged .zarray", "gzip", func(t *testing.T, path string) {
			os.WriteFile(filepath.Join(path, q, "0.0"), []byte("not gzip"), 0o644)
			os.WriteFile(filepath.Join(path, k, ".zarray"), []byte("{"), 0o644)
		}, []string{qErr, "%s/" + q + "/0.0", kErr, "%s/" + k + "/.zarray"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, path, _ := savedTiny(t, Options{Codec: tt.codec})
			tt.damage(t, path)
			err := f.Verify(path)
			if err == nil {
				t.Fatal("Verify accepted the damaged checkpoint")
			}
			for _, w := range tt.want {
				if w = strings.ReplaceAll(w, "%s", path); !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q: %v", w, err)
				}
			}
		})
	}
}

// TestVerifyByteBudget checks that Verify keeps its buffers within the
// byte budget.
func TestVerifyByteBudget(t *testing.T) {
	t.Parallel()
	for _, codec := range []string{"raw", "gzip"} {
		t.Run(codec, func(t *testing.T) {
			var peak atomic.Int64
			const budget, chunk = 64 << 10, 8 << 10
			f, err := New(Options{Codec: codec, ByteBudget: budget, ChunkBytes: chunk, IOConcurrency: 8, testPeakBytes: &peak})
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "checkpoint_1")
			if err := f.Save(path, model.Synthetic(model.Tiny.Config, tensor.Float32, 1)); err != nil {
				t.Fatal(err)
			}
			peak.Store(0)
			if err := f.Verify(path); err != nil {
				t.Fatal(err)
			}
			if p := peak.Load(); p < chunk || p > budget {
				t.Errorf("Verify had %d bytes in flight at its peak, want between %d and %d", p, chunk, budget)
			}
		})
	}
}
