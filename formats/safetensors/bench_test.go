package safetensors_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"ckptbench/formats/safetensors"
	"ckptbench/iox"
	"ckptbench/model"
	"ckptbench/tensor"
)

// benchConfig returns a LLaMA config with as many layers as make at least
// mb megabytes in float16. Its tensors are 2 to 16 MB, smaller than
// OpenLLaMA-3B's 20 to 200 MB, so that the default file stays small. Both
// codecs read the whole file in one system call, so tensor sizes matter
// little.
func benchConfig(mb int64) model.Config {
	c := model.OpenLLaMA3B.Config
	c.VocabSize, c.HiddenSize, c.IntermediateSize = 8000, 1024, 2752
	c.NumHiddenLayers = 1
	for c.NumBytes(tensor.Float16) < mb<<20 {
		c.NumHiddenLayers++
	}
	return c
}

// benchSizeMB returns $CKPTBENCH_SAFETENSORS_MB, the size of the
// benchmark file in megabytes: 64 unless set. Run with 512 or more to
// compare the codecs, with TMPDIR on a disk-backed file system so that
// cache=cold reads the disk.
func benchSizeMB(b *testing.B) int64 {
	s := os.Getenv("CKPTBENCH_SAFETENSORS_MB")
	if s == "" {
		return 64
	}
	mb, err := strconv.ParseInt(s, 10, 64)
	if err != nil || mb <= 0 {
		b.Fatalf("CKPTBENCH_SAFETENSORS_MB=%q is not a positive number of megabytes", s)
	}
	return mb
}

func BenchmarkSave(b *testing.B) {
	c := benchConfig(benchSizeMB(b))
	sd := model.Synthetic(c, tensor.Float16, model.DefaultSeed)
	path := filepath.Join(b.TempDir(), "model.safetensors")
	f := safetensors.New(safetensors.Options{})
	b.SetBytes(sd.NumBytes())
	b.ResetTimer()
	for range b.N {
		if err := f.Save(path, sd); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoad(b *testing.B) {
	c := benchConfig(benchSizeMB(b))
	sd := model.Synthetic(c, tensor.Float16, model.DefaultSeed)
	path := filepath.Join(b.TempDir(), "model.safetensors")
	if err := safetensors.WriteFile(path, sd); err != nil {
		b.Fatal(err)
	}
	size := sd.NumBytes()
	sd = nil
	for _, f := range []*safetensors.Format{safetensors.New(safetensors.Options{}), safetensors.New(safetensors.Options{Mmap: true})} {
		for _, cache := range []string{"cold", "warm"} {
			b.Run(fmt.Sprintf("codec=%s/cache=%s", f.Codec(), cache), func(b *testing.B) {
				b.SetBytes(size)
				for range b.N {
					b.StopTimer()
					if cache == "cold" {
						if err := iox.DropCache(path); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
					got, err := f.Load(path)
					if err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					if err := got.Close(); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			})
		}
	}
}
