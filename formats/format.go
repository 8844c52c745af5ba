// Package formats defines what every checkpoint approach under formats/
// implements, so the benchmarks, the tests and the report treat them alike.
//
// Each approach is a package of its own: torchsave (libtorch's serializer
// through gotch), zarr (TensorStore-style zarr v2 arrays), t5x (T5X-style
// optimized zarr) and safetensors.
package formats

import (
	"errors"

	"ckptbench/tensor"
)

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

// Verifier is implemented by formats that record the size and a checksum
// of every payload when they save.
type Verifier interface {
	// Verify reads the checkpoint at path and checks every payload
	// against the size and checksum its metadata records, without
	// returning the tensors. The error names each damaged tensor and its
	// file; a checksum mismatch wraps ErrChecksum. A checkpoint saved
	// without checksums fails verification.
	Verify(path string) error
}

// LoadVerifier is implemented by formats whose Load can check every
// payload against its recorded checksum while it reads.
type LoadVerifier interface {
	// WithVerifyOnLoad returns a copy of the format, with the same Name
	// and Codec, whose Load fails on a payload that does not match its
	// checksum (wrapping ErrChecksum) or on a checkpoint saved without
	// checksums.
	WithVerifyOnLoad() Format
}

// ErrChecksum is wrapped by the errors of Verify, and of Load with
// verification on, for a payload whose bytes differ from the ones saved.
var ErrChecksum = errors.New("checksum mismatch")
