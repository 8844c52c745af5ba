package t5x

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"ckptbench/tensor"
	"ckptbench/tensor/tensortest"
)

// largeEnv turns on the test of a tensor larger than 2 GiB, which needs
// about 5 GiB of memory and as much disk.
const largeEnv = "CKPTBENCH_LARGE"

// TestLargeTensor round-trips a float16 tensor of 2 GiB + 128 KiB, past
// every 32-bit offset and Linux's 2 GiB limit per read or write call. It
// runs once with T5X's 64 MiB chunks, which cut both dimensions (40
// column blocks of [3277 8192]), and once as a single chunk.
func TestLargeTensor(t *testing.T) {
	if testing.Short() || os.Getenv(largeEnv) != "1" {
		t.Skipf("set %s=1 (and do not pass -short) to round-trip a 2 GiB tensor; it needs about 5 GiB of memory", largeEnv)
	}
	x := tensor.New("big.weight", tensor.Float16, 16385, 65536)
	// Each 8-byte word holds its own index, so any misplaced block shows.
	for i := 0; i+8 <= len(x.Data); i += 8 {
		binary.LittleEndian.PutUint64(x.Data[i:], uint64(i)*0x9e3779b97f4a7c15)
	}
	want := &tensor.StateDict{Tensors: []*tensor.Tensor{x}}
	for _, c := range []struct {
		name       string
		opts       Options
		wantChunks int64
	}{
		{"t5x chunks", Options{Codec: "raw"}, 40},
		{"one chunk", Options{Codec: "raw", ChunkBytes: 4 << 30}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := New(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			a, err := f.planArray(x)
			if err != nil {
				t.Fatal(err)
			}
			if n := a.grid.numChunks(); n != c.wantChunks {
				t.Fatalf("%d chunks of %v, want %d", n, a.grid.chunks, c.wantChunks)
			}
			path := filepath.Join(t.TempDir(), "checkpoint_1")
			if err := f.Save(path, want); err != nil {
				t.Fatal(err)
			}
			got, err := f.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			tensortest.Equal(t, want, got)
		})
	}
}
