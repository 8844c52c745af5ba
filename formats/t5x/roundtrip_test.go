package t5x

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"ckptbench/model"
	"ckptbench/tensor"
	"ckptbench/tensor/tensortest"
)

// saveLoad saves sd with opts into a fresh directory, loads it back and
// returns the loaded state dict, closed when the test ends.
func saveLoad(t *testing.T, opts Options, sd *tensor.StateDict) (*tensor.StateDict, string) {
	t.Helper()
	f, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "checkpoint_1")
	if err := f.Save(dir, sd); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := f.Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() { got.Close() })
	return got, dir
}

func TestRoundTripTiny(t *testing.T) {
	t.Parallel()
	for _, dtype := range []tensor.DType{tensor.Float16, tensor.BFloat16, tensor.Float32} {
		for _, codec := range []string{"gzip", "zstd", "raw"} {
			for _, direct := range []bool{false, true} {
				name := fmt.Sprintf("dtype=%s/codec=%s/direct=%v", dtype, codec, direct)
				t.Run(name, func(t *testing.T) {
					want := model.Synthetic(model.Tiny.Config, dtype, 7)
					got, _ := saveLoad(t, Options{Codec: codec, BufferedWrite: !direct, BufferedRead: !direct}, want)
					tensortest.Equal(t, want, got)
				})
			}
		}
	}
}

// TestRoundTripSmallChunks cuts every tensor of the tiny model into many
// chunks, some of them column blocks that are not contiguous in memory,
// so gather and scatter run on every tensor.
func TestRoundTripSmallChunks(t *testing.T) {
	t.Parallel()
	for _, codec := range []string{"gzip", "raw"} {
		t.Run("codec="+codec, func(t *testing.T) {
			want := model.Synthetic(model.Tiny.Config, tensor.Float32, 3)
			got, dir := saveLoad(t, Options{Codec: codec, ChunkBytes: 4096, IOConcurrency: 3, ByteBudget: 64 << 10}, want)
			tensortest.Equal(t, want, got)
			files, _ := os.ReadDir(filepath.Join(dir, "model", "embed_tokens", "weight"))
			if len(files) < 10 {
				t.Errorf("embedding has %d files, want many chunks with ChunkBytes 4096", len(files))
			}
		})
	}
}

func TestRoundTripAwkwardShapes(t *testing.T) {
	t.Parallel()
	for _, codec := range []string{"gzip", "zstd", "raw"} {
		for _, chunkBytes := range []int64{0, 256} {
			t.Run(fmt.Sprintf("codec=%s/chunk=%d", codec, chunkBytes), func(t *testing.T) {
				want := awkwardStateDict()
				got, _ := saveLoad(t, Options{Codec: codec, ChunkBytes: chunkBytes}, want)
				tensortest.Equal(t, want, got)
			})
		}
	}
}

func TestRoundTripEmptyStateDict(t *testing.T) {
	want := &tensor.StateDict{}
	got, dir := saveLoad(t, Options{}, want)
	tensortest.Equal(t, want, got)
	if _, err := os.Stat(filepath.Join(dir, IndexFile)); err != nil {
		t.Errorf("an empty checkpoint has no index: %v", err)
	}
	f, err := New(Options{VerifyOnLoad: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Verify(dir); err != nil {
		t.Errorf("Verify of an empty checkpoint: %v", err)
	}
	verified, err := f.Load(dir)
	if err != nil {
		t.Fatalf("Load with verification of an empty checkpoint: %v", err)
	}
	tensortest.Equal(t, want, verified)
	verified.Close()
}
