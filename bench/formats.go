package bench

import (
	"fmt"

	"ckptbench/formats"
	"ckptbench/formats/safetensors"
	"ckptbench/formats/t5x"
	"ckptbench/formats/zarr"
)

// The Go formats, in the order make bench runs them. zarr and t5x run with
// each codec; safetensors with both of its load paths.
func init() {
	register(safetensors.New(safetensors.Options{}))
	register(safetensors.New(safetensors.Options{Mmap: true}))
	for _, codec := range []string{"raw", "zstd", "gzip"} {
		register(must(zarr.New(zarr.Options{Codec: codec})))
	}
	for _, codec := range []string{"raw", "zstd", "gzip"} {
		register(must(t5x.New(t5x.Options{Codec: codec})))
	}
}

func must[F formats.Format](f F, err error) formats.Format {
	if err != nil {
		panic(fmt.Sprintf("bench: %v", err))
	}
	return f
}
