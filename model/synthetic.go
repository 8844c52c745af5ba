package model

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"

	"github.com/x448/float16"

	"ckptbench/tensor"
)

// DefaultSeed is the seed of the synthetic weights that benchmarks use.
const DefaultSeed = 1

// quantileBits is the resolution of the normal-distribution table that
// synthetic values are drawn from: 4096 equiprobable values, enough that
// a histogram of the weights looks normal and cheap enough to fill 3.4 B
// elements in a few seconds.
const quantileBits = 12

// Synthetic returns deterministic weights with exactly the inventory of c
// in dtype d. Each tensor's values depend only on seed and the tensor's
// name, never on the order or parallelism of generation. They are
// distributed like a trained LLaMA's: projection and embedding weights
// roughly normal with standard deviation 0.02, norm weights near 1 (normal
// around 1 with deviation 0.05), which makes them about as compressible as
// real weights of the same dtype.
func Synthetic(c Config, d tensor.DType, seed uint64) *tensor.StateDict {
	metas := c.Inventory(d)
	sd := &tensor.StateDict{Tensors: make([]*tensor.Tensor, len(metas))}
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				m := metas[i]
				t := tensor.New(m.Name, m.DType, m.Shape...)
				fillNormal(t, seed)
				sd.Tensors[i] = t
			}
		}()
	}
	for i := range metas {
		next <- i
	}
	close(next)
	wg.Wait()
	return sd
}

// fillNormal fills t with normally distributed values whose mean and
// deviation depend on the kind of tensor its name shows.
func fillNormal(t *tensor.Tensor, seed uint64) {
	mean, std := 0.0, 0.02
	if strings.HasSuffix(t.Name, "norm.weight") {
		mean, std = 1, 0.05
	}
	h := fnv.New64a()
	h.Write([]byte(t.Name))
	rng := rand.New(rand.NewPCG(seed, h.Sum64()))

	const n = 1 << quantileBits
	switch size := t.DType.Size(); size {
	case 2:
		var table [n]uint16
		for i := range table {
			v := float32(mean + std*normalQuantile((float64(i)+0.5)/n))
			if t.DType == tensor.BFloat16 {
				table[i] = bfloat16Bits(v)
			} else {
				table[i] = float16.Fromfloat32(v).Bits()
			}
		}
		fillFromTable(t.Data, 2, rng, func(b []byte, k uint64) { binary.LittleEndian.PutUint16(b, table[k]) })
	case 4:
		var table [n]uint32
		for i := range table {
			table[i] = math.Float32bits(float32(mean + std*normalQuantile((float64(i)+0.5)/n)))
		}
		fillFromTable(t.Data, 4, rng, func(b []byte, k uint64) { binary.LittleEndian.PutUint32(b, table[k]) })
	default:
		for i := range t.Data {
			t.Data[i] = byte(rng.Uint64())
		}
	}
}

// fillFromTable writes one table entry per element, five 12-bit indexes
// from each 64-bit random number.
func fillFromTable(data []byte, size int, rng *rand.Rand, put func([]byte, uint64)) {
	const per = 64 / quantileBits
	const mask = 1<<quantileBits - 1
	for off := 0; off < len(data); {
		r := rng.Uint64()
		for j := 0; j < per && off < len(data); j++ {
			put(data[off:off+size], r&mask)
			r >>= quantileBits
			off += size
		}
	}
}

// bfloat16Bits rounds v to the nearest bfloat16, ties to even.
func bfloat16Bits(v float32) uint16 {
	b := math.Float32bits(v)
	if v != v {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// normalQuantile returns the standard normal quantile of p in (0, 1),
// by inverting the error function with math.Erfinv.
func normalQuantile(p float64) float64 {
	return math.Sqrt2 * math.Erfinv(2*p-1)
}
