package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"ckptbench/formats/safetensors"
	"ckptbench/internal/pyenv"
	"ckptbench/tensor"
	"ckptbench/tensor/tensortest"
)

// writeConfig writes c as dir/config.json.
func writeConfig(t *testing.T, dir string, c Config) {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// goDir writes a Hugging Face directory for Tiny with synthetic weights
// in one model.safetensors and returns it with the weights.
func goDir(t *testing.T) (string, *tensor.StateDict) {
	t.Helper()
	dir := t.TempDir()
	writeConfig(t, dir, Tiny.Config)
	sd := Synthetic(Tiny.Config, tensor.Float16, 4)
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), sd); err != nil {
		t.Fatal(err)
	}
	return dir, sd
}

// writeSharded splits sd into n safetensors shards in dir, the way
// save_pretrained names them, with model.safetensors.index.json.
func writeSharded(t *testing.T, dir string, sd *tensor.StateDict, n int) {
	t.Helper()
	weightMap := make(map[string]string)
	per := (len(sd.Tensors) + n - 1) / n
	for i := range n {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, n)
		shard := &tensor.StateDict{Tensors: sd.Tensors[i*per : min((i+1)*per, len(sd.Tensors))]}
		for _, tt := range shard.Tensors {
			weightMap[tt.Name] = name
		}
		if err := safetensors.WriteFile(filepath.Join(dir, name), shard); err != nil {
			t.Fatal(err)
		}
	}
	writeIndex(t, filepath.Join(dir, "model.safetensors.index.json"), weightMap)
}

func writeIndex(t *testing.T, path string, weightMap map[string]string) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 0}, "weight_map": weightMap})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadDirSafetensors(t *testing.T) {
	dir, want := goDir(t)
	got, cfg, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	tensortest.Equal(t, want, got)
	if cfg.HiddenSize != Tiny.Config.HiddenSize || cfg.NumKeyValueHeads != Tiny.Config.NumKeyValueHeads {
		t.Errorf("config %+v, want %+v", cfg, Tiny.Config)
	}
}

func TestLoadDirOrdersLikeInventory(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, Tiny.Config)
	want := Synthetic(Tiny.Config, tensor.BFloat16, 5)
	shuffled := &tensor.StateDict{Tensors: slices.Clone(want.Tensors)}
	slices.Reverse(shuffled.Tensors)
	writeSharded(t, dir, shuffled, 3)
	got, _, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	tensortest.Equal(t, want, got)
}

func TestLoadDirDropsIgnoredTensors(t *testing.T) {
	dir := t.TempDir()
	c := Tiny.Config
	c.TieWordEmbeddings = true
	writeConfig(t, dir, c)
	want := Synthetic(c, tensor.Float16, 6)
	saved := &tensor.StateDict{Tensors: slices.Clone(want.Tensors)}
	// transformers before 4.31 saved the rotary inverse frequencies, and a
	// tied checkpoint may still carry lm_head.weight.
	saved.Add(tensor.New("model.layers.0.self_attn.rotary_emb.inv_freq", tensor.Float32, 8))
	saved.Add(tensor.New("lm_head.weight", tensor.Float16, c.VocabSize, c.HiddenSize))
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), saved); err != nil {
		t.Fatal(err)
	}
	got, _, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	tensortest.Equal(t, want, got)
}

func TestLoadDirErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  []string // substrings of the error besides MODEL_DIR=dir
	}{
		{"missing directory", func(t *testing.T, dir string) {
			os.RemoveAll(dir)
		}, []string{"directory not found; point MODEL_DIR at a Hugging Face model directory or unset it to use synthetic weights"}},
		{"no config", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "config.json"))
		}, []string{"no config.json; point MODEL_DIR at a Hugging Face model directory or unset it to use synthetic weights"}},
		{"invalid config", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "config.json"), []byte("{"), 0o644)
		}, []string{"config.json is not a valid config.json"}},
		{"config of another model", func(t *testing.T, dir string) {
			c := Tiny.Config
			c.HiddenSize = 128
			writeConfig(t, dir, c)
		}, []string{"model.safetensors does not match its config.json", "model.embed_tokens.weight has shape [320 64], config.json implies [320 128]"}},
		{"no weights", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "model.safetensors"))
		}, []string{"no weights: none of model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json exists", "make fetch-model"}},
		{"truncated safetensors", func(t *testing.T, dir string) {
			path := filepath.Join(dir, "model.safetensors")
			info, _ := os.Stat(path)
			os.Truncate(path, info.Size()/2)
		}, []string{"model.safetensors", "run past the end", "re-download"}},
		{"damaged pytorch_model.bin", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "model.safetensors"))
			os.WriteFile(filepath.Join(dir, "pytorch_model.bin"), []byte("PK\x03\x04 not really a zip"), 0o644)
		}, []string{"pytorch_model.bin", "not a valid zip archive"}},
		{"extra tensor", func(t *testing.T, dir string) {
			sd := Synthetic(Tiny.Config, tensor.Float16, 4)
			sd.Add(tensor.New("model.extra.weight", tensor.Float16, 3))
			safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), sd)
		}, []string{"unexpected tensor model.extra.weight[3] float16"}},
		{"missing tensor", func(t *testing.T, dir string) {
			sd := Synthetic(Tiny.Config, tensor.Float16, 4)
			sd.Tensors = slices.DeleteFunc(sd.Tensors, func(t *tensor.Tensor) bool { return t.Name == "model.norm.weight" })
			safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), sd)
		}, []string{"missing tensor model.norm.weight"}},
		{"untied model without lm_head", func(t *testing.T, dir string) {
			sd := Synthetic(Tiny.Config, tensor.Float16, 4)
			sd.Tensors = slices.DeleteFunc(sd.Tensors, func(t *tensor.Tensor) bool { return t.Name == "lm_head.weight" })
			safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), sd)
		}, []string{"missing tensor lm_head.weight"}},
		{"mixed dtypes", func(t *testing.T, dir string) {
			sd := Synthetic(Tiny.Config, tensor.Float16, 4)
			sd.Tensors[len(sd.Tensors)-1] = Synthetic(Tiny.Config, tensor.Float32, 4).Lookup("lm_head.weight")
			safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), sd)
		}, []string{"lm_head.weight has dtype float32", "all weights must share one dtype"}},
		{"missing shard", func(t *testing.T, dir string) {
			shardDir(t, dir)
			os.Remove(filepath.Join(dir, "model-00002-of-00003.safetensors"))
		}, []string{"model-00002-of-00003.safetensors, listed in", "model.safetensors.index.json, is missing"}},
		{"truncated shard", func(t *testing.T, dir string) {
			shardDir(t, dir)
			path := filepath.Join(dir, "model-00003-of-00003.safetensors")
			info, _ := os.Stat(path)
			os.Truncate(path, info.Size()-1)
		}, []string{"model-00003-of-00003.safetensors", "run past the end"}},
		{"index puts tensor in wrong shard", func(t *testing.T, dir string) {
			weightMap := shardDir(t, dir)
			weightMap["model.norm.weight"] = "model-00001-of-00003.safetensors"
			writeIndex(t, filepath.Join(dir, "model.safetensors.index.json"), weightMap)
		}, []string{"has tensor model.norm.weight, which", "puts in model-00001-of-00003.safetensors"}},
		{"index lists absent tensor", func(t *testing.T, dir string) {
			weightMap := shardDir(t, dir)
			weightMap["model.ghost.weight"] = "model-00001-of-00003.safetensors"
			writeIndex(t, filepath.Join(dir, "model.safetensors.index.json"), weightMap)
		}, []string{"tensor model.ghost.weight", "is missing from that shard"}},
		{"index omits tensor", func(t *testing.T, dir string) {
			weightMap := shardDir(t, dir)
			delete(weightMap, "model.norm.weight")
			writeIndex(t, filepath.Join(dir, "model.safetensors.index.json"), weightMap)
		}, []string{"has tensor model.norm.weight, which", "does not list"}},
		{"index escapes directory", func(t *testing.T, dir string) {
			weightMap := shardDir(t, dir)
			weightMap["model.norm.weight"] = "../model-00003-of-00003.safetensors"
			writeIndex(t, filepath.Join(dir, "model.safetensors.index.json"), weightMap)
		}, []string{`lists shard "../model-00003-of-00003.safetensors", which is not a file name in the model directory`}},
		{"invalid index", func(t *testing.T, dir string) {
			shardDir(t, dir)
			os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), []byte(`{"weight_map": [1]}`), 0o644)
		}, []string{"model.safetensors.index.json is not a valid index"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := goDir(t)
			tc.setup(t, dir)
			sd, _, err := LoadDir(dir)
			if err == nil {
				sd.Close()
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "MODEL_DIR="+dir+": ") {
				t.Errorf("error %q does not start with MODEL_DIR=%s", msg, dir)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q spans several lines", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

// shardDir replaces dir's model.safetensors with three shards and an
// index, and returns the index's weight map.
func shardDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	path := filepath.Join(dir, "model.safetensors")
	sd, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	writeSharded(t, dir, sd, 3)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &index); err != nil {
		t.Fatal(err)
	}
	return index.WeightMap
}

// hfDigest is one tensor as scripts/make_hf_fixture.py describes it.
type hfDigest struct {
	Name   string  `json:"name"`
	DType  string  `json:"dtype"`
	Shape  []int64 `json:"shape"`
	SHA256 string  `json:"sha256"`
}

var hfFixtures struct {
	once sync.Once
	dir  string
	dirs map[string]struct {
		Files   []string   `json:"files"`
		Tensors []hfDigest `json:"tensors"`
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if hfFixtures.dir != "" {
		os.RemoveAll(hfFixtures.dir)
	}
	os.Exit(code)
}

// TestLoadDirTransformers loads directories that transformers'
// save_pretrained wrote, in every layout, and compares the tensors with
// the model's state_dict in Python.
func TestLoadDirTransformers(t *testing.T) {
	pyenv.Python(t)
	f := &hfFixtures
	f.once.Do(func() {
		dir, err := os.MkdirTemp("", "hfdir-fixtures-")
		if err != nil {
			t.Fatal(err)
		}
		f.dir = dir
		out := pyenv.Run(t, "make_hf_fixture.py", "hf-dirs", dir)
		if err := json.Unmarshal(out, &f.dirs); err != nil {
			t.Fatalf("make_hf_fixture.py output: %v", err)
		}
	})
	want := map[string]string{ // variant to the file its weights must come from
		"safe":         "model.safetensors",
		"bin":          "pytorch_model.bin",
		"safe-sharded": "model.safetensors.index.json",
		"bin-sharded":  "pytorch_model.bin.index.json",
		"safe-bf16":    "model.safetensors",
		"safe-tied":    "model.safetensors",
		"bin-tied":     "pytorch_model.bin",
	}
	for variant, file := range want {
		t.Run(variant, func(t *testing.T) {
			v, ok := f.dirs[variant]
			if !ok {
				t.Fatalf("make_hf_fixture.py wrote no %s directory", variant)
			}
			if !slices.Contains(v.Files, file) {
				t.Fatalf("save_pretrained wrote %v, without %s", v.Files, file)
			}
			sd, cfg, err := LoadDir(filepath.Join(f.dir, variant))
			if err != nil {
				t.Fatal(err)
			}
			defer sd.Close()
			var inventory []string
			for _, m := range cfg.Inventory(sd.Tensors[0].DType) {
				inventory = append(inventory, m.Name)
			}
			var names []string
			for _, tt := range sd.Tensors {
				names = append(names, tt.Name)
			}
			if !slices.Equal(names, inventory) {
				t.Errorf("tensors %v, want the inventory %v", names, inventory)
			}
			if len(v.Tensors) != len(sd.Tensors) {
				t.Errorf("loaded %d tensors, transformers has %d", len(sd.Tensors), len(v.Tensors))
			}
			for _, d := range v.Tensors {
				tt := sd.Lookup(d.Name)
				if tt == nil {
					t.Errorf("tensor %s is missing", d.Name)
					continue
				}
				sum := sha256.Sum256(tt.Data)
				if tt.DType.String() != d.DType || !slices.Equal(tt.Shape, d.Shape) || hex.EncodeToString(sum[:]) != d.SHA256 {
					t.Errorf("tensor %s is %v %s with different bytes, transformers has %v %s", d.Name, tt.Shape, tt.DType, d.Shape, d.DType)
				}
			}
		})
	}
}
