//go:build !torch

package torchsave

import "ckptbench/tensor"

// Save returns ErrNoLibtorch: this build has no libtorch.
func (Format) Save(path string, sd *tensor.StateDict) error { return ErrNoLibtorch }

// Load returns ErrNoLibtorch: this build has no libtorch.
func (Format) Load(path string) (*tensor.StateDict, error) { return nil, ErrNoLibtorch }
