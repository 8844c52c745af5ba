package model

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"ckptbench/tensor"
)

// Config holds the fields of a Hugging Face LlamaForCausalLM config.json
// that decide the tensor inventory.
type Config struct {
	Architectures         []string `json:"architectures,omitempty"`
	ModelType             string   `json:"model_type,omitempty"`
	VocabSize             int64    `json:"vocab_size"`
	HiddenSize            int64    `json:"hidden_size"`
	IntermediateSize      int64    `json:"intermediate_size"`
	NumHiddenLayers       int64    `json:"num_hidden_layers"`
	NumAttentionHeads     int64    `json:"num_attention_heads"`
	NumKeyValueHeads      int64    `json:"num_key_value_heads,omitempty"`
	RMSNormEps            float64  `json:"rms_norm_eps"`
	MaxPositionEmbeddings int64    `json:"max_position_embeddings"`
	TieWordEmbeddings     bool     `json:"tie_word_embeddings"`
	TorchDType            string   `json:"torch_dtype,omitempty"`
}

// Spec is a model that the suite can look up by name.
type Spec struct {
	// Name is the Hugging Face repository name without its owner, used in
	// benchmark names (model=open_llama_3b).
	Name string
	// Repo is the Hugging Face repository, owner/name.
	Repo   string
	Config Config
}

// The known models. OpenLLaMA-7B has the LLaMA-7B shapes. One copy of its
// float16 weights is about 13.5 GB, so save and load benchmarks need
// roughly twice that and fit only on machines with more than 24 GiB.
var (
	OpenLLaMA3B = Spec{Name: "open_llama_3b", Repo: "openlm-research/open_llama_3b", Config: Config{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama",
		VocabSize: 32000, HiddenSize: 3200, IntermediateSize: 8640, NumHiddenLayers: 26,
		NumAttentionHeads: 32, NumKeyValueHeads: 32, RMSNormEps: 1e-6,
		MaxPositionEmbeddings: 2048, TorchDType: "float16",
	}}
	OpenLLaMA7B = Spec{Name: "open_llama_7b", Repo: "openlm-research/open_llama_7b", Config: Config{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama",
		VocabSize: 32000, HiddenSize: 4096, IntermediateSize: 11008, NumHiddenLayers: 32,
		NumAttentionHeads: 32, NumKeyValueHeads: 32, RMSNormEps: 1e-6,
		MaxPositionEmbeddings: 2048, TorchDType: "float16",
	}}
	// Tiny is a LLaMA small enough for unit tests (about 0.2 M parameters)
	// that still has the awkward parts of real ones: grouped-query
	// attention (k_proj and v_proj narrower than q_proj) and an
	// intermediate size that is not a power of two.
	Tiny = Spec{Name: "tiny_llama", Repo: "", Config: Config{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama",
		VocabSize: 320, HiddenSize: 64, IntermediateSize: 172, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, RMSNormEps: 1e-6,
		MaxPositionEmbeddings: 128, TorchDType: "float16",
	}}
)

var specs = []Spec{OpenLLaMA3B, OpenLLaMA7B, Tiny}

// Lookup returns the spec whose Name or Repo is name.
func Lookup(name string) (Spec, error) {
	for _, s := range specs {
		if name == s.Name || (s.Repo != "" && name == s.Repo) {
			return s, nil
		}
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return Spec{}, fmt.Errorf("model: unknown model %q; known models: %s (or set MODEL_DIR to a Hugging Face directory)", name, strings.Join(names, ", "))
}

// ReadConfig reads and checks a Hugging Face config.json.
func ReadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("model: read config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("model: %s is not a valid config.json: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("model: %s: %w", path, err)
	}
	return c, nil
}

// Validate checks that the config describes a LLaMA whose inventory can be
// derived.
func (c Config) Validate() error {
	if c.ModelType != "" && c.ModelType != "llama" {
		return fmt.Errorf("model_type is %q; only LLaMA-family (\"llama\") models are supported", c.ModelType)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"vocab_size", c.VocabSize}, {"hidden_size", c.HiddenSize},
		{"intermediate_size", c.IntermediateSize}, {"num_hidden_layers", c.NumHiddenLayers},
		{"num_attention_heads", c.NumAttentionHeads},
	} {
		if f.v <= 0 {
			return fmt.Errorf("%s is %d; it must be positive", f.name, f.v)
		}
	}
	if c.HiddenSize%c.NumAttentionHeads != 0 {
		return fmt.Errorf("hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	}
	if kv := c.kvHeads(); kv <= 0 || c.NumAttentionHeads%kv != 0 {
		return fmt.Errorf("num_key_value_heads %d does not divide num_attention_heads %d", kv, c.NumAttentionHeads)
	}
	return nil
}

func (c Config) kvHeads() int64 {
	if c.NumKeyValueHeads == 0 {
		return c.NumAttentionHeads
	}
	return c.NumKeyValueHeads
}

// DType returns the config's torch_dtype, float16 when it is unset.
func (c Config) DType() (tensor.DType, error) {
	if c.TorchDType == "" {
		return tensor.Float16, nil
	}
	return tensor.ParseDType(c.TorchDType)
}
