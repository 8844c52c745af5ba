//go:build torch

package bench

import "ckptbench/formats/torchsave"

// torchsave needs libtorch, so it is registered only in builds with the
// torch tag (make bench and make test set it up through build/gotch.env).
func init() {
	torch := []Variant{
		{Format: torchsave.New(), Keys: "format=torchsave", ID: "torchsave"},
		{Format: torchsave.New().WithVerifyOnLoad(), Keys: "format=torchsave/verify=load", ID: "torchsave+verify", LoadOnly: true},
	}
	registry = append(registry[:2], append(torch, registry[2:]...)...)
}
