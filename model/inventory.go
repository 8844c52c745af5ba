package model

import (
	"fmt"
	"sort"
	"strings"

	"ckptbench/tensor"
)

// Inventory returns every tensor of the model in the order transformers'
// LlamaForCausalLM.state_dict() lists them, with dtype d. When the config
// ties the output embedding to the input one, lm_head.weight is left out,
// as transformers leaves it out of saved checkpoints.
func (c Config) Inventory(d tensor.DType) []tensor.Meta {
	h, inter := c.HiddenSize, c.IntermediateSize
	kv := h / c.NumAttentionHeads * c.kvHeads()
	m := func(name string, shape ...int64) tensor.Meta {
		return tensor.Meta{Name: name, DType: d, Shape: shape}
	}
	ms := []tensor.Meta{m("model.embed_tokens.weight", c.VocabSize, h)}
	for i := int64(0); i < c.NumHiddenLayers; i++ {
		p := fmt.Sprintf("model.layers.%d.", i)
		ms = append(ms,
			m(p+"self_attn.q_proj.weight", h, h),
			m(p+"self_attn.k_proj.weight", kv, h),
			m(p+"self_attn.v_proj.weight", kv, h),
			m(p+"self_attn.o_proj.weight", h, h),
			m(p+"mlp.gate_proj.weight", inter, h),
			m(p+"mlp.up_proj.weight", inter, h),
			m(p+"mlp.down_proj.weight", h, inter),
			m(p+"input_layernorm.weight", h),
			m(p+"post_attention_layernorm.weight", h),
		)
	}
	ms = append(ms, m("model.norm.weight", h))
	if !c.TieWordEmbeddings {
		ms = append(ms, m("lm_head.weight", c.VocabSize, h))
	}
	return ms
}

// NumBytes returns the payload size of the inventory with dtype d.
func (c Config) NumBytes(d tensor.DType) int64 {
	var n int64
	for _, m := range c.Inventory(d) {
		n += m.NumBytes()
	}
	return n
}

// CheckInventory compares the tensors in sd with the inventory the config
// implies. It accepts any float dtype (float16, bfloat16, float32) as long
// as every tensor has the same one, and accepts lm_head.weight in a tied
// model. source names the file or directory in error messages. The error
// lists every missing, unexpected and misshapen tensor.
func (c Config) CheckInventory(sd *tensor.StateDict, source string) error {
	if len(sd.Tensors) == 0 {
		return fmt.Errorf("%s: contains no tensors", source)
	}
	d := sd.Tensors[0].DType
	switch d {
	case tensor.Float16, tensor.BFloat16, tensor.Float32:
	default:
		return fmt.Errorf("%s: tensor %s has dtype %s; weights must be float16, bfloat16 or float32", source, sd.Tensors[0].Name, d)
	}
	want := make(map[string]tensor.Meta)
	for _, m := range c.Inventory(d) {
		want[m.Name] = m
	}
	var problems []string
	seen := make(map[string]bool)
	for _, t := range sd.Tensors {
		seen[t.Name] = true
		w, ok := want[t.Name]
		switch {
		case !ok && t.Name == "lm_head.weight" && c.TieWordEmbeddings:
			continue
		case !ok:
			problems = append(problems, fmt.Sprintf("unexpected tensor %s", t.Meta))
		case t.DType != d:
			problems = append(problems, fmt.Sprintf("tensor %s has dtype %s, but %s has %s; all weights must share one dtype", t.Name, t.DType, sd.Tensors[0].Name, d))
		case !equalShape(t.Shape, w.Shape):
			problems = append(problems, fmt.Sprintf("tensor %s has shape %v, config.json implies %v", t.Name, t.Shape, w.Shape))
		}
	}
	var missing []string
	for name := range want {
		if !seen[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	for _, name := range missing {
		problems = append(problems, "missing tensor "+name)
	}
	if len(problems) == 0 {
		return nil
	}
	const show = 8
	more := ""
	if len(problems) > show {
		more = fmt.Sprintf(" (and %d more)", len(problems)-show)
		problems = problems[:show]
	}
	return fmt.Errorf("%s does not match its config.json: %s%s", source, strings.Join(problems, "; "), more)
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
