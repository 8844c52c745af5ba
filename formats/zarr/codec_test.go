package zarr

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestCodecRoundTrip(t *testing.T) {
	src := append(randomBytes(1<<16, 3), make([]byte, 1<<16)...)
	for _, name := range Codecs {
		t.Run(name, func(t *testing.T) {
			c := mustCodec(t, name)
			if c.ID() != name {
				t.Errorf("ID() = %q, want %q", c.ID(), name)
			}
			enc, err := c.Encode(nil, src)
			if err != nil {
				t.Fatal(err)
			}
			if name != "raw" && len(enc) >= len(src) {
				t.Errorf("%s encoded %d bytes, half of them zeros, into %d", name, len(src), len(enc))
			}
			// A decoder built from the written compressor reads the data.
			dec, err := CodecFromMetadata(c.Compressor())
			if err != nil {
				t.Fatal(err)
			}
			dst := make([]byte, len(src))
			out, err := dec.Decode(dst, enc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, src) {
				t.Fatal("decoded data differs")
			}
			if &out[0] != &dst[0] {
				t.Error("Decode did not decode into dst")
			}
		})
	}
}

// TestCodecDecodeBounds checks that Decode rejects data that decodes to
// more than len(dst), reports truncation through a short result, and never
// writes past len(dst) even when dst has spare capacity.
func TestCodecDecodeBounds(t *testing.T) {
	src := randomBytes(1000, 4)
	for _, name := range Codecs {
		t.Run(name, func(t *testing.T) {
			c := mustCodec(t, name)
			enc, err := c.Encode(nil, src)
			if err != nil {
				t.Fatal(err)
			}
			buf := bytes.Repeat([]byte{0xEE}, 2000)
			_, err = c.Decode(buf[:999], enc)
			if !errors.Is(err, ErrChunkSize) {
				t.Errorf("Decode into 999 bytes = %v, want ErrChunkSize", err)
			}
			if !bytes.Equal(buf[999:], bytes.Repeat([]byte{0xEE}, 1001)) {
				t.Error("Decode wrote past len(dst)")
			}

			if name == "raw" {
				return
			}
			out, err := c.Decode(make([]byte, 1000), enc[:len(enc)/2])
			if err == nil && len(out) == 1000 {
				t.Error("Decode of half the encoded data returned a full chunk")
			}
		})
	}
}

// TestZstdWithoutContentSize decodes a zstd stream whose frame header has
// no content size, which other writers may produce.
func TestZstdWithoutContentSize(t *testing.T) {
	src := randomBytes(5000, 5)
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	// A flush before the end makes the writer emit the frame header
	// before the content size is known.
	w.Write(src[:100])
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	w.Write(src[100:])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var h zstd.Header
	if err := h.Decode(buf.Bytes()); err != nil || h.HasFCS {
		t.Fatalf("test stream has a content size (%v); the test needs one without", err)
	}
	c := mustCodec(t, "zstd")
	dst := make([]byte, len(src))
	out, err := c.Decode(dst, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, src) {
		t.Fatal("decoded data differs")
	}
	if _, err := c.Decode(make([]byte, 4999), buf.Bytes()); !errors.Is(err, ErrChunkSize) {
		t.Errorf("Decode into 4999 bytes = %v, want ErrChunkSize", err)
	}
}

func TestCodecConcurrent(t *testing.T) {
	for _, name := range Codecs {
		t.Run(name, func(t *testing.T) {
			c := mustCodec(t, name)
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 20 {
						src := randomBytes(4096, uint64(g*100+i))
						enc, err := c.Encode(nil, src)
						if err != nil {
							errs <- err
							return
						}
						dst := make([]byte, len(src))
						if _, err := c.Decode(dst, enc); err != nil {
							errs <- err
							return
						}
						if !bytes.Equal(dst, src) {
							errs <- errors.New("round trip differs")
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

func TestCodecFromMetadata(t *testing.T) {
	for _, tc := range []struct {
		compressor string
		id         string
		err        error
	}{
		{"", "raw", nil},
		{"null", "raw", nil},
		{`{"id":"gzip","level":1}`, "gzip", nil},
		{`{"id":"gzip"}`, "gzip", nil},
		{`{"id":"zlib","level":9}`, "zlib", nil},
		{`{"id":"zstd","level":3}`, "zstd", nil},
		{`{"id":"bz2","level":1}`, "bz2", nil},
		{`{"id":"blosc","cname":"lz4","clevel":5,"shuffle":-1}`, "", ErrUnsupportedCodec},
		{`{"id":"lzma"}`, "", ErrUnsupportedCodec},
		{`{"id":"gzip","level":12}`, "", ErrMetadata},
		{`{"level":1}`, "", ErrMetadata},
		{`"gzip"`, "", ErrMetadata},
	} {
		c, err := CodecFromMetadata(json.RawMessage(tc.compressor))
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("CodecFromMetadata(%s) = %v, want %v", tc.compressor, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("CodecFromMetadata(%s): %v", tc.compressor, err)
			continue
		}
		if c.ID() != tc.id {
			t.Errorf("CodecFromMetadata(%s).ID() = %q, want %q", tc.compressor, c.ID(), tc.id)
		}
	}
}

func TestCodecForRejects(t *testing.T) {
	for _, name := range []string{"blosc", "bz2", "lz4"} {
		if _, err := CodecFor(name); !errors.Is(err, ErrUnsupportedCodec) {
			t.Errorf("CodecFor(%q) = %v, want ErrUnsupportedCodec", name, err)
		}
	}
}
