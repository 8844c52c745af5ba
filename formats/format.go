// Package formats defines what every checkpoint approach under formats/
// implements, so the benchmarks, the tests and the report treat them alike.
//
// Each approach is a package of its own: torchsave (libtorch's serializer
// through gotch), zarr (TensorStore-style zarr v2 arrays), t5x (T5X-style
// optimized zarr) and safetensors.
package formats

import "ckptbench/tensor"

// Format saves and loads a state dict at a path on disk.
//
// Save must be durable and atomic: when it returns nil every byte is
// synced to disk; the checkpoint becomes visible at path only once
// complete (written under iox.TempPath and published with iox.Commit);
// and a failed Save leaves whatever was at path before untouched.
//
// Load returns the tensors in the order they were saved, with every byte
// in memory the caller can use (a memory map whose pages were not all
// read does not count as loaded). The caller closes the state dict.
type Format interface {
	// Name is the value of the format= key in benchmark names.
	Name() string
	// Codec is the value of the codec= key, or "" for formats without one.
	Codec() string
	Save(path string, sd *tensor.StateDict) error
	Load(path string) (*tensor.StateDict, error)
}
