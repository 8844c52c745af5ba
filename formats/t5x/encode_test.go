package t5x

import (
	"bytes"
	stdgzip "compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"ckptbench/formats/zarr"
	"ckptbench/model"
	"ckptbench/tensor"
)

// weightsLike returns n bytes of synthetic float16 weights, which the
// fast codecs cannot compress.
func weightsLike(n int) []byte {
	c := model.Tiny.Config
	c.VocabSize = int64(n/2/int(c.HiddenSize)) + 1
	w := model.Synthetic(c, tensor.Float16, 1).Lookup("model.embed_tokens.weight").Data
	return w[:n]
}

func TestChunkEncoder(t *testing.T) {
	inputs := map[string][]byte{
		"empty":        {},
		"one byte":     {7},
		"zeros small":  make([]byte, 1000),
		"zeros large":  make([]byte, 1<<20),
		"random small": randomBytes(3000),
		"weights":      weightsLike(1<<20 + 3),
		"weights tiny": weightsLike(100),
	}
	for _, codecName := range []string{"gzip", "zstd"} {
		codec, err := zarr.CodecFor(codecName)
		if err != nil {
			t.Fatal(err)
		}
		for _, all := range []bool{false, true} {
			e, err := newChunkEncoder(codec, DefaultMinSavings, all)
			if err != nil {
				t.Fatal(err)
			}
			for name, src := range inputs {
				t.Run(fmt.Sprintf("%s/all=%v/%s", codecName, all, name), func(t *testing.T) {
					out, err := e.encode(make([]byte, 0, encodeBound(int64(len(src)))), src)
					if err != nil {
						t.Fatal(err)
					}
					dec := make([]byte, len(src))
					got, err := codec.Decode(dec, out)
					if err != nil {
						t.Fatalf("decode: %v", err)
					}
					if !bytes.Equal(got, src) {
						t.Fatalf("decoded %d bytes differ from the %d encoded", len(got), len(src))
					}
					if codecName == "gzip" {
						r, err := stdgzip.NewReader(bytes.NewReader(out))
						if err != nil {
							t.Fatalf("standard library gzip: %v", err)
						}
						std, err := io.ReadAll(r)
						if err != nil || !bytes.Equal(std, src) {
							t.Fatalf("standard library gzip read %d bytes (%v), want the %d encoded", len(std), err, len(src))
						}
					}
					if (name == "zeros large" || name == "weights") && len(out) > len(src)*95/100 {
						t.Errorf("encoded to %d of %d bytes; the codec should compress this", len(out), len(src))
					}
				})
			}
		}
	}
}

// TestChunkEncoderStores checks that a chunk that does not compress is
// written as stored blocks: for gzip, exactly the level-0 stream.
func TestChunkEncoderStores(t *testing.T) {
	src := randomBytes(1 << 20)
	codec, _ := zarr.CodecFor("gzip")
	stored, err := zarr.CodecFromMetadata([]byte(`{"id":"gzip","level":0}`))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := stored.Encode(nil, src)
	e, _ := newChunkEncoder(codec, DefaultMinSavings, false)
	got, err := e.encode(nil, src)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("random bytes were not written as stored gzip blocks (%d bytes, the stored stream is %d)", len(got), len(want))
	}
	zcodec, _ := zarr.CodecFor("zstd")
	ze, _ := newChunkEncoder(zcodec, DefaultMinSavings, false)
	zgot, err := ze.encode(nil, src)
	if err != nil {
		t.Fatal(err)
	}
	if zwant := appendZstdRaw(nil, src); !bytes.Equal(zgot, zwant) {
		t.Errorf("random bytes were not written as a raw zstd frame (%d bytes, want %d)", len(zgot), len(zwant))
	}
}

func TestZstdRawFrame(t *testing.T) {
	codec, _ := zarr.CodecFor("zstd")
	for _, n := range []int{0, 1, zstdRawBlock - 1, zstdRawBlock, zstdRawBlock + 1, 3*zstdRawBlock + 17} {
		src := randomBytes(n)
		frame := appendZstdRaw(nil, src)
		if want := 4 + 2 + 8 + n + 3*max(1, (n+zstdRawBlock-1)/zstdRawBlock); len(frame) != want {
			t.Errorf("%d bytes: frame is %d bytes, want %d", n, len(frame), want)
		}
		got, err := codec.Decode(make([]byte, n), frame)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(got, src) {
			t.Fatalf("%d bytes: decoded bytes differ", n)
		}
		// A chunk one byte shorter than the frame's content size must not
		// decode.
		if n > 0 {
			if _, err := codec.Decode(make([]byte, n-1), frame); err == nil {
				t.Errorf("%d bytes: decoding into %d bytes succeeded", n, n-1)
			}
		}
	}
}

func randomBytes(n int) []byte {
	rng := rand.New(rand.NewPCG(uint64(n), 9))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// TestChunkEncoderMinSavings checks that weights, which the codecs
// compress by about 8 %, are compressed by default and stored when the
// minimum savings is above that.
func TestChunkEncoderMinSavings(t *testing.T) {
	src := weightsLike(1 << 20)
	codec, _ := zarr.CodecFor("gzip")
	stored, _ := zarr.CodecFromMetadata([]byte(`{"id":"gzip","level":0}`))
	storedOut, _ := stored.Encode(nil, src)
	for _, c := range []struct {
		minSavings float64
		wantStored bool
	}{{DefaultMinSavings, false}, {0.2, true}, {2, true}} {
		e, err := newChunkEncoder(codec, c.minSavings, false)
		if err != nil {
			t.Fatal(err)
		}
		out, err := e.encode(nil, src)
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Equal(out, storedOut); got != c.wantStored {
			t.Errorf("MinSavings %v: stored = %v (%d of %d bytes), want %v", c.minSavings, got, len(out), len(src), c.wantStored)
		}
	}
}
