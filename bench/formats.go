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
	// Checksum verification on load, so its cost shows beside the plain
	// loads of the same format.
	registerVerifying(must(zarr.New(zarr.Options{Codec: "raw"})))
	registerVerifying(must(t5x.New(t5x.Options{Codec: "raw"})))
	registerVerifying(safetensors.New(safetensors.Options{Mmap: true}))
}

// registerVerifying adds the copy of f that checks payload checksums on
// load, with ID "<id>+verify" and the name part verify=load.
func registerVerifying(f formats.Format) {
	lv, ok := f.(formats.LoadVerifier)
	if !ok {
		panic(fmt.Sprintf("bench: %s cannot verify on load", f.Name()))
	}
	register(lv.WithVerifyOnLoad())
	v := &registry[len(registry)-1]
	v.Keys += "/verify=load"
	v.ID += "+verify"
	v.LoadOnly = true
}

func must[F formats.Format](f F, err error) formats.Format {
	if err != nil {
		panic(fmt.Sprintf("bench: %v", err))
	}
	return f
}
