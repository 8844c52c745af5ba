package bench

import (
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"

	"ckptbench/internal/pyenv"
	"ckptbench/model"
	"ckptbench/tensor"
)

// Setup is the model under test and where its checkpoints go. The weights
// are created on first use and can be released between the save and the
// load benchmarks, so a load of a 6.85 GB model does not need a second
// resident copy. Per-tensor CRC-32C checksums taken at creation verify
// loads without it.
type Setup struct {
	Spec    model.Spec
	Config  model.Config
	DType   tensor.DType
	Weights string // source of the weights, as printed in results
	Dir     string // scratch directory for checkpoints

	modelDir string
	mu       sync.Mutex
	sd       *tensor.StateDict
	metas    []tensor.Meta
	sums     map[string]uint32
	bytes    int64
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// NewSetup reads the benchmark's environment (see the package comment).
// It reads a model directory's weights at once. Synthetic weights are
// made on first use.
func NewSetup() (*Setup, error) {
	s := &Setup{DType: tensor.Float16, modelDir: os.Getenv("BENCH_MODEL_DIR")}
	name := os.Getenv("BENCH_MODEL")
	if name == "" {
		name = model.Tiny.Name
	}
	switch {
	case s.modelDir != "":
		abs, err := filepath.Abs(s.modelDir)
		if err != nil {
			return nil, err
		}
		s.modelDir = abs
		// The weights are read now, once, so that a damaged directory
		// fails before any benchmark and the results state the dtype the
		// files store, which config.json's torch_dtype need not match.
		sd, c, err := model.LoadDir(abs)
		if err != nil {
			return nil, err
		}
		s.adopt(sd)
		s.DType = dominantDType(sd)
		s.Config = c
		s.Spec = model.Spec{Name: filepath.Base(abs), Config: c}
		// A known model's name labels real weights only when their config
		// has that model's shapes, so results never carry a wrong name.
		if spec, err := model.Lookup(name); err == nil && os.Getenv("BENCH_MODEL") != "" &&
			fmt.Sprint(spec.Config.Inventory(s.DType)) == fmt.Sprint(c.Inventory(s.DType)) {
			s.Spec.Name, s.Spec.Repo = spec.Name, spec.Repo
		} else if os.Getenv("BENCH_MODEL") != "" && err != nil {
			s.Spec.Name = name
		}
		s.Weights = "pretrained, from " + abs
	default:
		spec, err := model.Lookup(name)
		if err != nil {
			return nil, err
		}
		s.Spec, s.Config = spec, spec.Config
		s.Weights = fmt.Sprintf("synthetic (seed %d; deterministic, shaped like trained weights)", model.DefaultSeed)
	}
	if err := s.cutLayers(os.Getenv("BENCH_LAYERS")); err != nil {
		return nil, err
	}
	s.Dir = os.Getenv("BENCH_DIR")
	if s.Dir == "" {
		s.Dir = filepath.Join(pyenv.Root(), "scratch")
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("BENCH_DIR: %w", err)
	}
	return s, nil
}

// dominantDType returns the dtype that holds most of sd's bytes.
func dominantDType(sd *tensor.StateDict) tensor.DType {
	bytes := map[tensor.DType]int64{}
	var best tensor.DType
	for _, t := range sd.Tensors {
		bytes[t.DType] += int64(len(t.Data))
		if bytes[t.DType] > bytes[best] {
			best = t.DType
		}
	}
	return best
}

// cutLayers keeps only the first n decoder layers of a synthetic model, for
// profiles and quick runs on a slice of a large model. The model's name
// gets a "-<n>layers" suffix so its results never mix with the full
// model's.
func (s *Setup) cutLayers(n string) error {
	if n == "" {
		return nil
	}
	layers, err := strconv.ParseInt(n, 10, 64)
	if err != nil || layers < 1 || layers > s.Config.NumHiddenLayers {
		return fmt.Errorf("BENCH_LAYERS=%s: want a whole number from 1 to %d, the model's layer count", n, s.Config.NumHiddenLayers)
	}
	if s.modelDir != "" {
		return fmt.Errorf("BENCH_LAYERS=%s: cannot cut the layers of real weights from BENCH_MODEL_DIR; unset one of them", n)
	}
	s.Config.NumHiddenLayers = layers
	s.Spec.Config = s.Config
	s.Spec.Name = fmt.Sprintf("%s-%dlayers", s.Spec.Name, layers)
	s.Spec.Repo = ""
	return nil
}

// Model returns the weights, creating or reading them on first use.
func (s *Setup) Model() (*tensor.StateDict, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sd != nil {
		return s.sd, nil
	}
	var sd *tensor.StateDict
	if s.modelDir != "" {
		var err error
		if sd, _, err = model.LoadDir(s.modelDir); err != nil {
			return nil, err
		}
	} else {
		sd = model.Synthetic(s.Config, s.DType, model.DefaultSeed)
	}
	s.adopt(sd)
	return sd, nil
}

// adopt makes sd the model's weights, taking their metadata and checksums
// the first time.
func (s *Setup) adopt(sd *tensor.StateDict) {
	if s.sums == nil {
		s.metas = sd.Metas()
		s.bytes = sd.NumBytes()
		s.sums = checksums(sd)
	}
	s.sd = sd
}

// Release drops the weights and returns their memory to the OS. Model
// creates them again when needed.
func (s *Setup) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sd == nil {
		return
	}
	s.sd.Close()
	s.sd = nil
	FreeMemory()
}

// NumBytes returns the model's tensor bytes. Model must have run once.
func (s *Setup) NumBytes() int64 { return s.bytes }

// Verify checks a loaded state dict against the model's metadata and
// checksums, naming the first tensor that differs.
func (s *Setup) Verify(sd *tensor.StateDict) error {
	if len(sd.Tensors) != len(s.metas) {
		return fmt.Errorf("loaded %d tensors, saved %d", len(sd.Tensors), len(s.metas))
	}
	for i, t := range sd.Tensors {
		m := s.metas[i]
		if t.Name != m.Name || t.DType != m.DType || fmt.Sprint(t.Shape) != fmt.Sprint(m.Shape) {
			return fmt.Errorf("tensor #%d: loaded %v, saved %v", i, t.Meta, m)
		}
		if crc32.Checksum(t.Data, crcTable) != s.sums[t.Name] {
			return fmt.Errorf("tensor %s: loaded bytes differ from the saved ones (CRC-32C mismatch)", t.Name)
		}
	}
	return nil
}

func checksums(sd *tensor.StateDict) map[string]uint32 {
	sums := make(map[string]uint32, len(sd.Tensors))
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan *tensor.Tensor)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range next {
				c := crc32.Checksum(t.Data, crcTable)
				mu.Lock()
				sums[t.Name] = c
				mu.Unlock()
			}
		}()
	}
	for _, t := range sd.Tensors {
		next <- t
	}
	close(next)
	wg.Wait()
	return sums
}

// FreeMemory runs the garbage collector and returns freed memory to the
// OS, so that one iteration's garbage does not count in the next one's
// peak resident memory.
func FreeMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}
