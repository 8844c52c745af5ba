package interop_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"ckptbench/bench"
	"ckptbench/internal/pyenv"
	"ckptbench/model"
	"ckptbench/tensor"
	"ckptbench/tensor/tensortest"
)

// smolLM2Tensors is the converted checkpoint's tensor count: the
// embedding, 9 tensors in each of 30 layers and the final norm.
const smolLM2Tensors = 1 + 30*9 + 1

// smolLM2Dir returns the converted SmolLM2 directory ($SMOLLM2_DIR, else
// models/smollm2-135m), running convert.py when it is missing. Every test
// here reads 270 MB of weights and most run Python, so -short skips them.
func smolLM2Dir(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("reads the 135M-parameter SmolLM2 and runs it in Python; skipped with -short")
	}
	dir := os.Getenv("SMOLLM2_DIR")
	if dir == "" {
		dir = filepath.Join(pyenv.Root(), "models", "smollm2-135m")
	}
	// Absolute, because the Python scripts print it back as a clean path.
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "conversion.json")); err != nil {
		pyenv.Run(t, "smollm2/convert.py", "--out", dir)
	}
	return dir
}

// loadDir loads dir with model.LoadDir and checks the tensor count.
func loadDir(t *testing.T, dir string) *tensor.StateDict {
	t.Helper()
	sd, _, err := model.LoadDir(dir)
	if err != nil {
		t.Fatalf("LoadDir: %v", err)
	}
	if got := len(sd.Tensors); got != smolLM2Tensors {
		sd.Close()
		t.Fatalf("LoadDir(%s): %d tensors, want %d", dir, got, smolLM2Tensors)
	}
	return sd
}

// binOnlyDir returns a directory that links dir's config.json and
// pytorch_model.bin only, so LoadDir, which prefers model.safetensors,
// reads the pickle.
func binOnlyDir(t *testing.T, dir string) string {
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
	return binDir
}

func TestSmolLM2WeightFilesAgree(t *testing.T) {
	dir := smolLM2Dir(t)
	fromST := loadDir(t, dir)
	defer fromST.Close()
	fromBin := loadDir(t, binOnlyDir(t, dir))
	defer fromBin.Close()

	if got := fromST.Lookup("model.layers.0.self_attn.k_proj.weight"); got == nil || !slices.Equal(got.Shape, []int64{192, 576}) {
		t.Errorf("model.safetensors: k_proj of layer 0 is %v, want shape [192 576] (grouped-query attention)", got)
	}
	tensortest.Equal(t, fromST, fromBin)
}

// goFormats returns every format variant in the bench registry of this
// build, without the disk reference, whose loads return raw bytes.
func goFormats(t *testing.T) []bench.Variant {
	t.Helper()
	// BENCH_FORMATS narrows the registry for benchmark runs, but this
	// test covers every format whatever the caller's environment selects.
	t.Setenv("BENCH_FORMATS", "")
	all, err := bench.Variants()
	if err != nil {
		t.Fatalf("bench.Variants: %v", err)
	}
	var out []bench.Variant
	var ids []string
	for _, v := range all {
		if !v.Reference {
			out = append(out, v)
			ids = append(ids, v.ID)
		}
	}
	if len(out) == 0 {
		t.Fatal("the bench registry contains no formats")
	}
	t.Logf("formats: %s", strings.Join(ids, " "))
	if !slices.ContainsFunc(out, func(v bench.Variant) bool { return v.Name() == "torchsave" }) {
		t.Log("torchsave is not covered: it needs the torch build tag (source build/gotch.env first)")
	}
	return out
}

// digest is one tensor as scripts/roundtrip_read.py describes it.
type digest struct {
	Name   string  `json:"name"`
	DType  string  `json:"dtype"`
	Shape  []int64 `json:"shape"`
	SHA256 string  `json:"sha256"`
}

func digestOf(x *tensor.Tensor) digest {
	sum := sha256.Sum256(x.Data)
	shape := x.Shape
	if shape == nil {
		shape = []int64{}
	}
	return digest{Name: x.Name, DType: x.DType.String(), Shape: shape, SHA256: hex.EncodeToString(sum[:])}
}

// logitsSummary is logits.py's JSON summary, as roundtrip_read.py prints
// it.
type logitsSummary struct {
	SHA256    string `json:"sha256"`
	NextToken string `json:"next_token"`
	Identical bool   `json:"identical"`
}

// pyLine is one line of roundtrip_read.py's output: the reference line
// (Against set) or one checkpoint's.
type pyLine struct {
	Against    string        `json:"against"`
	Format     string        `json:"format"`
	Checkpoint string        `json:"checkpoint"`
	Tensors    []digest      `json:"tensors"`
	Logits     logitsSummary `json:"logits"`
}

func parseLines(t *testing.T, out []byte) []pyLine {
	t.Helper()
	var lines []pyLine
	s := bufio.NewScanner(bytes.NewReader(out))
	s.Buffer(nil, 16<<20) // a checkpoint's line lists 272 digests
	for s.Scan() {
		var l pyLine
		if err := json.Unmarshal(s.Bytes(), &l); err != nil {
			t.Fatalf("roundtrip_read.py printed %.200q, not a JSON line: %v", s.Bytes(), err)
		}
		lines = append(lines, l)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("read roundtrip_read.py's output: %v", err)
	}
	return lines
}

// checkDigests reports every tensor that Python read differently from
// want, compared by name because safetensors' reader returns names sorted.
func checkDigests(t *testing.T, variant string, want []digest, got []digest) {
	t.Helper()
	byName := make(map[string]digest, len(got))
	for _, g := range got {
		byName[g.Name] = g
	}
	if len(got) != len(want) {
		t.Errorf("%s: Python read %d tensors, want %d", variant, len(got), len(want))
	}
	for _, w := range want {
		g, ok := byName[w.Name]
		switch {
		case !ok:
			t.Errorf("%s: Python did not read tensor %s", variant, w.Name)
		case g.DType != w.DType || !slices.Equal(g.Shape, w.Shape):
			t.Errorf("%s: tensor %s is %s %v in Python, want %s %v", variant, w.Name, g.DType, g.Shape, w.DType, w.Shape)
		case g.SHA256 != w.SHA256:
			t.Errorf("%s: tensor %s: Python read different bytes (SHA-256 %s, want %s)", variant, w.Name, g.SHA256, w.SHA256)
		}
	}
}

// roundTrip saves sd with v at ckpt, loads it back and fails t unless
// every tensor comes back bit for bit.
func roundTrip(t *testing.T, v bench.Variant, ckpt string, sd *tensor.StateDict) {
	start := time.Now()
	if err := v.Save(ckpt, sd); err != nil {
		t.Fatalf("Save: %v", err)
	}
	saved := time.Now()
	got, err := v.Load(ckpt)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer got.Close()
	loaded := time.Now()
	tensortest.Equal(t, sd, got)
	t.Logf("save %v, load %v", saved.Sub(start).Round(time.Millisecond), loaded.Sub(saved).Round(time.Millisecond))
}

// TestSmolLM2ThroughGoFormats round-trips SmolLM2 through every Go
// format, then reads each Go-written checkpoint with that format's Python
// reader and checks the tensors' bytes and the model's logits against
// the original directory, all in one Python process.
func TestSmolLM2ThroughGoFormats(t *testing.T) {
	dir := smolLM2Dir(t)
	pyenv.Python(t) // skip or fail before reading 270 MB when llama-venv is missing
	variants := goFormats(t)
	sd := loadDir(t, dir)
	defer sd.Close()

	work := t.TempDir()
	var args []string
	var checked []bench.Variant
	for _, v := range variants {
		ckpt := filepath.Join(work, strings.ReplaceAll(v.ID, "/", "-"))
		if t.Run(v.Keys, func(t *testing.T) { roundTrip(t, v, ckpt, sd) }) {
			args = append(args, "--read", v.Name(), ckpt, ckpt+".safetensors")
			checked = append(checked, v)
		}
	}
	if len(checked) == 0 {
		t.Fatal("no format round-tripped; nothing for Python to read")
	}

	want := make([]digest, len(sd.Tensors))
	for i, x := range sd.Tensors {
		want[i] = digestOf(x)
	}
	// Python needs the memory more than this test does from here on.
	sd.Close()
	debug.FreeOSMemory()

	start := time.Now()
	out := pyenv.Run(t, "roundtrip_read.py", append([]string{"--config", dir, "--against", dir}, args...)...)
	t.Logf("roundtrip_read.py: %d checkpoints in %v", len(checked), time.Since(start).Round(time.Millisecond))

	lines := parseLines(t, out)
	if len(lines) != 1+len(checked) {
		t.Fatalf("roundtrip_read.py printed %d lines, want the reference and %d checkpoints:\n%s", len(lines), len(checked), out)
	}
	ref := lines[0]
	if ref.Against != dir {
		t.Fatalf("first line is %+v, want the reference logits of %s", ref, dir)
	}
	if ref.Logits.NextToken != " Paris" {
		t.Errorf("reference: next token after %q is %q, want \" Paris\"", "The capital of France is", ref.Logits.NextToken)
	}
	for i, v := range checked {
		line := lines[1+i]
		if ckpt := filepath.Join(work, strings.ReplaceAll(v.ID, "/", "-")); line.Checkpoint != ckpt || line.Format != v.Name() {
			t.Errorf("line %d is for %s %s, want %s %s", 1+i, line.Format, line.Checkpoint, v.Name(), ckpt)
			continue
		}
		checkDigests(t, v.Keys, want, line.Tensors)
		// roundtrip_read.py exits 1 when logits differ, which fails
		// pyenv.Run above; these checks guard the summary itself.
		if !line.Logits.Identical || line.Logits.SHA256 != ref.Logits.SHA256 {
			t.Errorf("%s: logits SHA-256 %s (identical %v), want %s as from %s", v.Keys, line.Logits.SHA256, line.Logits.Identical, ref.Logits.SHA256, dir)
		}
	}
}
