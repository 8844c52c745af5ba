// Package torchsave saves and loads checkpoints with libtorch's C++
// serializer, through gotch (github.com/sugarme/gotch v0.9.1).
//
// A checkpoint is one file: a TorchScript archive, the zip that
// torch::serialize::OutputArchive writes (gotch's SaveMultiNew). Each
// tensor is a parameter of a module, under its own name. The archive
// contains the module's pickled structure and one raw little-endian
// record per tensor. Save lends libtorch each tensor's payload without a copy
// (libtorch's from_blob), and Load returns tensors whose Data is the
// memory libtorch read the records into, again without a copy.
//
// Python reads these files with torch.jit.load (named_parameters gives
// the tensors). torch.load in torch 2.1 detects the TorchScript archive,
// warns, and hands it to torch.jit.load, so it returns a ScriptModule,
// not a dict of tensors. In the other direction, Load reads archives that
// torch.jit.save writes, but not the pickle-based zips of Python's
// torch.save. The tests check all of these claims with llama-venv's torch.
//
// libtorch 2.1.0 does not check the CRC-32 that the zip directory stores
// for each record, so a flipped bit in a record loads without error (the
// tests show it). Verify checks every record's CRC-32 and size against
// the pickled module in pure Go, also in builds without libtorch. Load
// with Options.VerifyOnLoad checks the archive's structure before
// libtorch reads it, then each loaded tensor against its record's CRC-32.
//
// The package needs the torch build tag and a libtorch configured by
// scripts/gotch/setup.sh; built without it, Save and Load return
// ErrNoLibtorch.
package torchsave

import (
	"errors"

	"ckptbench/formats"
)

// ErrNoLibtorch is returned by Save and Load in builds without libtorch.
var ErrNoLibtorch = errors.New("torchsave: built without libtorch; run scripts/gotch/setup.sh, source build/gotch.env and rebuild (it sets -tags=torch)")

// Format is the torchsave checkpoint format. Its zero value is ready to use.
type Format struct {
	opts Options
}

var _ formats.Format = Format{}

// New returns the torchsave format.
func New() Format { return Format{} }

// Name returns "torchsave", the value of format= in benchmark names.
func (Format) Name() string { return "torchsave" }

// Codec returns "": libtorch stores records uncompressed.
func (Format) Codec() string { return "" }
