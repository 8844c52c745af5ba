package torchpickle

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"ckptbench/internal/pyenv"
	"ckptbench/tensor"
	"ckptbench/tensor/tensortest"
)

// digest is one tensor as scripts/make_hf_fixture.py describes it.
type digest struct {
	Name   string  `json:"name"`
	DType  string  `json:"dtype"`
	Shape  []int64 `json:"shape"`
	SHA256 string  `json:"sha256"`
}

// checkDigests fails t unless sd holds exactly the tensors of want, in
// order, with the same bytes.
func checkDigests(t *testing.T, file string, want []digest, sd *tensor.StateDict) {
	t.Helper()
	var names []string
	for _, d := range want {
		names = append(names, d.Name)
	}
	var got []string
	for _, tt := range sd.Tensors {
		got = append(got, tt.Name)
	}
	if !slices.Equal(got, names) {
		t.Fatalf("%s: tensors %v, torch has %v", file, got, names)
	}
	for i, d := range want {
		tt := sd.Tensors[i]
		if tt.DType.String() != d.DType || !slices.Equal(tt.Shape, d.Shape) {
			t.Errorf("%s: tensor %s is %v %s, torch has %v %s", file, d.Name, tt.Shape, tt.DType, d.Shape, d.DType)
			continue
		}
		sum := sha256.Sum256(tt.Data)
		if hex.EncodeToString(sum[:]) != d.SHA256 {
			t.Errorf("%s: tensor %s: bytes differ from torch's", file, d.Name)
		}
	}
}

var torchFixtures struct {
	once    sync.Once
	dir     string
	digests map[string][]digest
}

// torchSaveFixtures writes the torch.save fixtures with llama-venv's
// torch once per test binary and returns their directory and digests.
func torchSaveFixtures(t *testing.T) (string, map[string][]digest) {
	t.Helper()
	pyenv.Python(t) // skip or fail before the Once when there is no venv
	f := &torchFixtures
	f.once.Do(func() {
		dir, err := os.MkdirTemp("", "torchpickle-fixtures-")
		if err != nil {
			t.Fatal(err)
		}
		out := pyenv.Run(t, "make_hf_fixture.py", "torch-save", dir)
		if err := json.Unmarshal(out, &f.digests); err != nil {
			t.Fatalf("make_hf_fixture.py output: %v", err)
		}
		f.dir = dir
	})
	if f.dir == "" {
		t.Fatal("torch.save fixtures were not written (see the first failing test)")
	}
	return f.dir, f.digests
}

func TestMain(m *testing.M) {
	code := m.Run()
	if torchFixtures.dir != "" {
		os.RemoveAll(torchFixtures.dir)
	}
	os.Exit(code)
}

func TestReadMatchesTorchLoad(t *testing.T) {
	dir, digests := torchSaveFixtures(t)
	for _, file := range []string{"linear-f16.bin", "linear-bf16.bin", "linear-f32.bin", "tied.bin", "legacy.bin", "params.bin", "mixed.bin"} {
		t.Run(file, func(t *testing.T) {
			want, ok := digests[file]
			if !ok {
				t.Fatalf("make_hf_fixture.py wrote no digest for %s", file)
			}
			sd, err := ReadFile(filepath.Join(dir, file))
			if err != nil {
				t.Fatal(err)
			}
			defer sd.Close()
			checkDigests(t, file, want, sd)
		})
	}
}

func TestCommittedFixtures(t *testing.T) {
	b, err := os.ReadFile("../../testdata/torchpickle/digests.json")
	if err != nil {
		t.Fatal(err)
	}
	var digests map[string][]digest
	if err := json.Unmarshal(b, &digests); err != nil {
		t.Fatal(err)
	}
	for file, want := range digests {
		sd, err := ReadFile(filepath.Join("../../testdata/torchpickle", file))
		if err != nil {
			t.Fatal(err)
		}
		checkDigests(t, file, want, sd)
		sd.Close()
	}
}

func TestSharedStorageSharesMemory(t *testing.T) {
	sd, err := ReadFile("../../testdata/torchpickle/tied.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	emb, head, rows := sd.Lookup("embed_tokens.weight"), sd.Lookup("lm_head.weight"), sd.Lookup("rows")
	if emb == nil || head == nil || rows == nil {
		t.Fatalf("tensors missing: %v", sd.Metas())
	}
	if &emb.Data[0] != &head.Data[0] {
		t.Error("embed_tokens.weight and lm_head.weight share a storage in the file but not memory")
	}
	// rows is emb[3:5] of a [10, 4] float16 tensor: 8 bytes per row.
	if !slices.Equal(rows.Shape, []int64{2, 4}) {
		t.Fatalf("rows has shape %v, want [2 4]", rows.Shape)
	}
	if &rows.Data[0] != &emb.Data[3*8] {
		t.Error("rows does not alias rows 3 and 4 of embed_tokens.weight")
	}
	if cap(rows.Data) != len(rows.Data) {
		t.Errorf("rows has capacity %d beyond its %d bytes, so append would overwrite its neighbor", cap(rows.Data), len(rows.Data))
	}
}

func TestLegacyEqualsZip(t *testing.T) {
	zipped, err := ReadFile("../../testdata/torchpickle/tied.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer zipped.Close()
	legacy, err := ReadFile("../../testdata/torchpickle/legacy.bin")
	if err != nil {
		t.Fatal(err)
	}
	defer legacy.Close()
	tensortest.Equal(t, zipped, legacy)
}

func TestRejectsUnsupportedFiles(t *testing.T) {
	dir, _ := torchSaveFixtures(t)
	for _, tc := range []struct {
		file        string
		unsupported bool
		want        []string
	}{
		{"noncontiguous.bin", true, []string{"tensor cols", "stride [4 1]", "not contiguous", ".contiguous()"}},
		{"transposed.bin", true, []string{"tensor t", "not contiguous"}},
		{"nested.bin", false, []string{`entry "model"`, "is a dict, not a tensor"}},
		{"torchscript.pt", true, []string{"TorchScript", "torch.jit.load"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			sd, err := ReadFile(path)
			if err == nil {
				sd.Close()
				t.Fatal("no error")
			}
			if errors.Is(err, ErrUnsupported) != tc.unsupported {
				t.Errorf("errors.Is(err, ErrUnsupported) = %v, want %v", !tc.unsupported, tc.unsupported)
			}
			for _, w := range append(tc.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
