//go:build !torch

package device

import (
	"fmt"

	"ckptbench/tensor"
)

const noLibtorch = "libtorch is not built in; run scripts/gotch/setup.sh, source build/gotch.env and rebuild (it sets -tags=torch)"

// Current returns the CPU: without libtorch no GPU can be used.
func Current() Device {
	d := CPU
	d.Note = noLibtorch
	return d
}

// Place returns an empty placement for the CPU, where sd already is, and
// an error for a GPU, which this build cannot reach.
func Place(d Device, sd *tensor.StateDict) (*Placement, error) {
	if d.IsCUDA() {
		return nil, fmt.Errorf("device: cannot place tensors on %s: %s", d, noLibtorch)
	}
	return &Placement{Device: d}, nil
}
