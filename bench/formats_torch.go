//go:build torch

package bench

import "ckptbench/formats/torchsave"

// torchsave needs libtorch, so it is registered only in builds with the
// torch tag (make bench and make test set it up through build/gotch.env).
func init() {
	registry = append(registry[:2], append([]Variant{{Format: torchsave.New(), Keys: "format=torchsave", ID: "torchsave"}}, registry[2:]...)...)
}
