package faults

import (
	"fmt"
	"strings"
	"testing"

	"ckptbench/bench"
	"ckptbench/formats"
	"ckptbench/model"
	"ckptbench/tensor"
)

// variant is one format configuration under test.
type variant struct {
	// id is the bench variant ID; one that ends in verifySuffix names a
	// copy of a formats.LoadVerifier that verifies on load.
	id     string
	format formats.Format
	// verifyOnLoad is set for the "+verify" copies.
	verifyOnLoad bool
}

// verifySuffix ends the ID of a variant that verifies checksums on load,
// whether the harness registers it or this package derives it.
const verifySuffix = "+verify"

// variants returns every format variant of the benchmark harness but the
// disk reference, each followed by its verifying copy where it has one
// and the harness does not register that copy itself.
func variants() ([]variant, error) {
	vs, err := bench.Variants()
	if err != nil {
		return nil, err
	}
	registered := map[string]bool{}
	for _, v := range vs {
		registered[v.ID] = true
	}
	var out []variant
	for _, v := range vs {
		if v.Reference {
			continue
		}
		verifying := strings.HasSuffix(v.ID, verifySuffix)
		out = append(out, variant{id: v.ID, format: v.Format, verifyOnLoad: verifying})
		lv, ok := v.Format.(formats.LoadVerifier)
		if ok && !verifying && !registered[v.ID+verifySuffix] {
			out = append(out, variant{id: v.ID + verifySuffix, format: lv.WithVerifyOnLoad(), verifyOnLoad: true})
		}
	}
	return out, nil
}

// testVariants returns variants, failing t on an error.
func testVariants(t *testing.T) []variant {
	t.Helper()
	vs, err := variants()
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("no format variants to test; check BENCH_FORMATS")
	}
	return vs
}

// baseVariants returns the variants that are not verifying copies, whose
// Save differs from their copy's in nothing.
func baseVariants(t *testing.T) []variant {
	var out []variant
	for _, v := range testVariants(t) {
		if !v.verifyOnLoad {
			out = append(out, v)
		}
	}
	return out
}

// findVariant returns the variant with the given ID.
func findVariant(id string) (variant, error) {
	vs, err := variants()
	if err != nil {
		return variant{}, err
	}
	for _, v := range vs {
		if v.id == id {
			return v, nil
		}
	}
	return variant{}, fmt.Errorf("no format variant %q", id)
}

// The state dicts the tests save, by name: "old" is the checkpoint that
// a save replaces, "new" the one replacing it, and "big" a larger model
// (about 2.2 MB in float16) for the full-disk tests.
func stateDict(name string) *tensor.StateDict {
	switch name {
	case "old":
		return model.Synthetic(model.Tiny.Config, tensor.Float16, 1)
	case "new":
		return model.Synthetic(model.Tiny.Config, tensor.Float16, 2)
	case "big":
		cfg := model.Tiny.Config
		cfg.NumHiddenLayers = 24
		return model.Synthetic(cfg, tensor.Float16, 3)
	}
	panic("faults: unknown state dict " + name)
}

// The tensors the damage tests damage: target, and twin, which has the
// same shape and dtype, for swaps.
const (
	target = "model.layers.1.self_attn.q_proj.weight"
	twin   = "model.layers.1.self_attn.o_proj.weight"
)
