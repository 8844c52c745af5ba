package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"ckptbench/formats/safetensors"
	"ckptbench/formats/torchpickle"
	"ckptbench/tensor"
)

// DirEnv is the environment variable that points the suite at a Hugging
// Face model directory instead of synthetic weights. LoadDir's errors
// start with it, because that is what the user set.
const DirEnv = "MODEL_DIR"

// weightFiles are the weight layouts of a Hugging Face directory, in the
// order transformers' from_pretrained prefers them.
var weightFiles = []string{
	"model.safetensors",
	"model.safetensors.index.json",
	"pytorch_model.bin",
	"pytorch_model.bin.index.json",
}

// LoadDir reads a Hugging Face model directory into memory: config.json,
// then the weights from model.safetensors, sharded safetensors listed in
// model.safetensors.index.json, pytorch_model.bin, or sharded
// pytorch_model-0000x-of-0000y.bin files listed in
// pytorch_model.bin.index.json, in that order of preference.
//
// The tensors come back in Config.Inventory order and are checked with
// Config.CheckInventory. Two kinds of tensors that transformers ignores
// on load are dropped: rotary_emb.inv_freq buffers, which transformers
// before 4.31 saved, and lm_head.weight when tie_word_embeddings is set,
// because it is then the input embedding. A tied checkpoint may omit
// lm_head.weight. The caller closes the state dict.
//
// Every error is one line that starts with MODEL_DIR=dir and names the
// file at fault and what to do.
func LoadDir(dir string) (*tensor.StateDict, Config, error) {
	sd, cfg, err := loadDir(dir)
	if err != nil {
		return nil, Config{}, fmt.Errorf("%s=%s: %w", DirEnv, dir, err)
	}
	return sd, cfg, nil
}

const pointAtDir = "point " + DirEnv + " at a Hugging Face model directory or unset it to use synthetic weights"

func loadDir(dir string) (*tensor.StateDict, Config, error) {
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, Config{}, fmt.Errorf("directory not found; %s", pointAtDir)
	case err != nil:
		return nil, Config{}, err
	case !info.IsDir():
		return nil, Config{}, fmt.Errorf("not a directory; %s", pointAtDir)
	}
	cfgPath := filepath.Join(dir, "config.json")
	if _, err := os.Stat(cfgPath); errors.Is(err, fs.ErrNotExist) {
		return nil, Config{}, fmt.Errorf("no config.json; %s", pointAtDir)
	}
	cfg, err := ReadConfig(cfgPath)
	if err != nil {
		return nil, Config{}, fmt.Errorf("%w; fix or re-download config.json", err)
	}

	sd, source, err := readWeights(dir)
	if err != nil {
		return nil, Config{}, err
	}
	dropIgnored(sd, cfg)
	sortByInventory(sd, cfg)
	if err := cfg.CheckInventory(sd, source); err != nil {
		sd.Close()
		return nil, Config{}, fmt.Errorf("%w; the weights and config.json must come from one model, so re-download it", err)
	}
	return sd, cfg, nil
}

// readWeights reads the first weight layout of weightFiles found in dir,
// and returns the tensors and the file they came from.
func readWeights(dir string) (*tensor.StateDict, string, error) {
	for _, name := range weightFiles {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		var sd *tensor.StateDict
		var err error
		switch name {
		case "model.safetensors":
			sd, err = safetensors.ReadFile(path)
		case "pytorch_model.bin":
			sd, err = torchpickle.ReadFile(path)
		default:
			sd, err = readSharded(dir, path)
		}
		return sd, path, err
	}
	return nil, "", fmt.Errorf("no weights: none of %s exists; run `make fetch-model`, or unset %s to use synthetic weights", strings.Join(weightFiles, ", "), DirEnv)
}

// shardIndex is the part of a *.index.json file that maps tensors to
// shard files.
type shardIndex struct {
	WeightMap map[string]string `json:"weight_map"`
}

// readSharded reads every shard that the index file at indexPath lists and
// checks that each tensor is in the shard the index names.
func readSharded(dir, indexPath string) (*tensor.StateDict, error) {
	b, err := os.ReadFile(indexPath)
	if err != nil {
		return nil, err
	}
	var index shardIndex
	if err := json.Unmarshal(b, &index); err != nil {
		return nil, fmt.Errorf("%s is not a valid index: %v; re-download it", indexPath, err)
	}
	if len(index.WeightMap) == 0 {
		return nil, fmt.Errorf("%s has no weight_map entries; re-download it", indexPath)
	}
	shards := slices.Sorted(maps.Keys(invert(index.WeightMap)))
	for _, shard := range shards {
		if shard != filepath.Base(shard) || shard == "." || shard == ".." {
			return nil, fmt.Errorf("%s lists shard %q, which is not a file name in the model directory", indexPath, shard)
		}
	}

	read := torchpickle.ReadFile
	if strings.HasSuffix(indexPath, ".safetensors.index.json") {
		read = safetensors.ReadFile
	}
	all := &tensor.StateDict{}
	fail := func(err error) (*tensor.StateDict, error) {
		all.Close()
		return nil, err
	}
	seen := make(map[string]string) // tensor name to shard
	for _, shard := range shards {
		path := filepath.Join(dir, shard)
		sd, err := read(path)
		if errors.Is(err, fs.ErrNotExist) {
			return fail(fmt.Errorf("shard %s, listed in %s, is missing; re-download the model", path, indexPath))
		}
		if err != nil {
			return fail(err)
		}
		all.OnClose(sd.Close)
		for _, t := range sd.Tensors {
			if prev, ok := seen[t.Name]; ok {
				return fail(fmt.Errorf("tensor %s is in both %s and %s", t.Name, prev, shard))
			}
			seen[t.Name] = shard
			if want, ok := index.WeightMap[t.Name]; !ok {
				return fail(fmt.Errorf("shard %s has tensor %s, which %s does not list; re-download the model", path, t.Name, indexPath))
			} else if want != shard {
				return fail(fmt.Errorf("shard %s has tensor %s, which %s puts in %s; re-download the model", path, t.Name, indexPath, want))
			}
			all.Add(t)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(index.WeightMap)) {
		if _, ok := seen[name]; !ok {
			return fail(fmt.Errorf("tensor %s, which %s puts in %s, is missing from that shard; re-download the model", name, indexPath, index.WeightMap[name]))
		}
	}
	return all, nil
}

func invert(m map[string]string) map[string]bool {
	out := make(map[string]bool, len(m))
	for _, v := range m {
		out[v] = true
	}
	return out
}

// dropIgnored removes the tensors that transformers ignores when it loads
// a LlamaForCausalLM: rotary_emb.inv_freq buffers, which it recomputes,
// and a tied lm_head.weight, which it replaces by the input embedding.
func dropIgnored(sd *tensor.StateDict, cfg Config) {
	sd.Tensors = slices.DeleteFunc(sd.Tensors, func(t *tensor.Tensor) bool {
		return strings.HasSuffix(t.Name, ".rotary_emb.inv_freq") ||
			(cfg.TieWordEmbeddings && t.Name == "lm_head.weight")
	})
}

// sortByInventory orders sd's tensors as cfg.Inventory lists them, with
// tensors the inventory does not know at the end in their original order.
func sortByInventory(sd *tensor.StateDict, cfg Config) {
	rank := make(map[string]int)
	for i, m := range cfg.Inventory(tensor.Float16) {
		rank[m.Name] = i
	}
	pos := func(t *tensor.Tensor) int {
		if r, ok := rank[t.Name]; ok {
			return r
		}
		return len(rank)
	}
	slices.SortStableFunc(sd.Tensors, func(a, b *tensor.Tensor) int { return pos(a) - pos(b) })
}
