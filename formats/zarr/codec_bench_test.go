package zarr

import (
	"bytes"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"ckptbench/model"
	"ckptbench/tensor"
)

// BenchmarkCodec measures each codec on one OpenLLaMA-3B attention
// projection of synthetic float16 weights (3200 x 3200, 19.5 MiB), and
// reports the compression ratio. The shuffle variants split each float16
// into its low and high bytes first, as blosc's shuffle filter does, to
// show what blosc could gain over a plain codec.
func BenchmarkCodec(b *testing.B) {
	sd := model.Synthetic(model.Config{VocabSize: 1, HiddenSize: 3200, IntermediateSize: 1, NumHiddenLayers: 1, NumAttentionHeads: 32}, tensor.Float16, model.DefaultSeed)
	src := sd.Lookup("model.layers.0.self_attn.q_proj.weight").Data

	gzipLevel := func(level int) func([]byte) []byte {
		return func(p []byte) []byte {
			var buf bytes.Buffer
			w, _ := gzip.NewWriterLevel(&buf, level)
			w.Write(p)
			w.Close()
			return buf.Bytes()
		}
	}
	zstdLevel := func(level zstd.EncoderLevel, allLit bool) func([]byte) []byte {
		enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1), zstd.WithAllLitEntropyCompression(allLit))
		return func(p []byte) []byte { return enc.EncodeAll(p, nil) }
	}
	shuffled := func(encode func([]byte) []byte) func([]byte) []byte {
		return func(p []byte) []byte { return encode(shuffle2(p)) }
	}
	for _, v := range []struct {
		name   string
		encode func([]byte) []byte
	}{
		{"gzip-1", gzipLevel(1)},
		{"gzip-6", gzipLevel(6)},
		{"gzip-huffman", gzipLevel(gzip.HuffmanOnly)},
		{"zstd-fastest", zstdLevel(zstd.SpeedFastest, false)},
		{"zstd-default", zstdLevel(zstd.SpeedDefault, false)},
		{"zstd-fastest-alllit", zstdLevel(zstd.SpeedFastest, true)},
		{"zstd-default-alllit", zstdLevel(zstd.SpeedDefault, true)},
		{"shuffle-zstd-fastest-alllit", shuffled(zstdLevel(zstd.SpeedFastest, true))},
		{"shuffle-gzip-huffman", shuffled(gzipLevel(gzip.HuffmanOnly))},
	} {
		b.Run("codec="+v.name, func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			var out []byte
			for b.Loop() {
				out = v.encode(src)
			}
			b.ReportMetric(float64(len(src))/float64(len(out)), "ratio")
		})
	}
	for _, name := range []string{"gzip", "zstd"} {
		b.Run("codec="+name+"/op=decode", func(b *testing.B) {
			c, err := CodecFor(name)
			if err != nil {
				b.Fatal(err)
			}
			enc, err := c.Encode(nil, src)
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]byte, len(src))
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if _, err := c.Decode(dst, enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// shuffle2 returns p's even bytes followed by its odd bytes: for
// little-endian float16, all low bytes, then all high bytes.
func shuffle2(p []byte) []byte {
	out := make([]byte, len(p))
	half := len(p) / 2
	for i := 0; i < half; i++ {
		out[i] = p[2*i]
		out[half+i] = p[2*i+1]
	}
	return out
}
