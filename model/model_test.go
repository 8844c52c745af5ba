package model

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/x448/float16"

	"ckptbench/tensor"
	"ckptbench/tensor/tensortest"
)

func TestOpenLLaMA3BInventory(t *testing.T) {
	inv := OpenLLaMA3B.Config.Inventory(tensor.Float16)
	if len(inv) != 237 {
		t.Errorf("got %d tensors, want 237", len(inv))
	}
	var params int64
	for _, m := range inv {
		params += m.NumElements()
	}
	// Figures from ../shared/FIELD.md, taken from the model's config.json.
	if params != 3_426_473_600 {
		t.Errorf("got %d parameters, want 3,426,473,600", params)
	}
	if got := OpenLLaMA3B.Config.NumBytes(tensor.Float16); got != 6_852_947_200 {
		t.Errorf("got %d bytes, want 6,852,947,200", got)
	}
}

func TestTiedEmbeddingsOmitLMHead(t *testing.T) {
	c := Tiny.Config
	c.TieWordEmbeddings = true
	for _, m := range c.Inventory(tensor.Float16) {
		if m.Name == "lm_head.weight" {
			t.Fatal("tied config lists lm_head.weight")
		}
	}
}

func TestSyntheticIsDeterministic(t *testing.T) {
	a := Synthetic(Tiny.Config, tensor.Float16, 7)
	b := Synthetic(Tiny.Config, tensor.Float16, 7)
	tensortest.Equal(t, a, b)
	c := Synthetic(Tiny.Config, tensor.Float16, 8)
	if tensortest.Diff(a, c) == "" {
		t.Error("seeds 7 and 8 gave the same weights")
	}
	if err := Tiny.Config.CheckInventory(a, "synthetic"); err != nil {
		t.Error(err)
	}
}

func TestSyntheticDistribution(t *testing.T) {
	for _, d := range []tensor.DType{tensor.Float16, tensor.BFloat16, tensor.Float32} {
		sd := Synthetic(Tiny.Config, d, DefaultSeed)
		for _, tc := range []struct {
			name      string
			mean, std float64
		}{
			{"model.layers.0.mlp.up_proj.weight", 0, 0.02},
			{"model.layers.1.input_layernorm.weight", 1, 0.05},
		} {
			vals := decode(sd.Lookup(tc.name))
			var sum, sq float64
			for _, v := range vals {
				sum += v
			}
			mean := sum / float64(len(vals))
			for _, v := range vals {
				sq += (v - mean) * (v - mean)
			}
			std := math.Sqrt(sq / float64(len(vals)))
			if math.Abs(mean-tc.mean) > 0.2*tc.std || math.Abs(std-tc.std) > 0.1*tc.std {
				t.Errorf("%s %s: mean %.4f std %.4f, want about %.4f and %.4f", d, tc.name, mean, std, tc.mean, tc.std)
			}
		}
	}
}

func decode(t *tensor.Tensor) []float64 {
	var out []float64
	for i := 0; i < len(t.Data); i += t.DType.Size() {
		switch t.DType {
		case tensor.Float16:
			out = append(out, float64(float16.Frombits(binary.LittleEndian.Uint16(t.Data[i:])).Float32()))
		case tensor.BFloat16:
			out = append(out, float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(t.Data[i:]))<<16)))
		case tensor.Float32:
			out = append(out, float64(math.Float32frombits(binary.LittleEndian.Uint32(t.Data[i:]))))
		}
	}
	return out
}

func TestCheckInventoryNamesProblems(t *testing.T) {
	sd := Synthetic(Tiny.Config, tensor.Float16, 1)
	sd.Tensors = sd.Tensors[1:]                           // drop embed_tokens
	sd.Tensors[0].Shape = []int64{1, 64}                  // misshape q_proj of layer 0
	sd.Add(tensor.New("extra.weight", tensor.Float16, 2)) // unexpected
	err := Tiny.Config.CheckInventory(sd, "dir/model.safetensors")
	if err == nil {
		t.Fatal("no error for a broken inventory")
	}
	for _, want := range []string{"dir/model.safetensors", "missing tensor model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight has shape [1 64]", "unexpected tensor extra.weight"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
