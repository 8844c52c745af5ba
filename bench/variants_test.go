package bench

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestVariantsRoundTrip saves and loads the tiny model with every
// registered variant, as the benchmarks do, and checks the loaded bytes
// against the model's checksums.
func TestVariantsRoundTrip(t *testing.T) {
	t.Setenv("BENCH_DIR", t.TempDir())
	s, err := NewSetup()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Model(); err != nil {
		t.Fatal(err)
	}
	for _, v := range registry {
		t.Run(v.ID, func(t *testing.T) {
			sd, err := s.Model()
			if err != nil {
				t.Fatal(err)
			}
			path := s.CheckpointPath(v)
			if err := mkdirParent(path); err != nil {
				t.Fatal(err)
			}
			if err := v.Save(path, sd); err != nil {
				t.Fatalf("save: %v", err)
			}
			got, err := v.Load(path)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			defer got.Close()
			if v.Reference {
				if got.NumBytes() < sd.NumBytes() {
					t.Errorf("disk reference read %d bytes, want at least %d", got.NumBytes(), sd.NumBytes())
				}
				return
			}
			if err := s.Verify(got); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestVariantsSelection(t *testing.T) {
	t.Setenv("BENCH_FORMATS", "disk,zarr/gzip")
	vs, err := Variants()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, v := range vs {
		ids = append(ids, v.ID)
	}
	if got, want := strings.Join(ids, " "), "disk/1 disk/16 zarr/gzip"; got != want {
		t.Errorf("BENCH_FORMATS=disk,zarr/gzip selects %q, want %q", got, want)
	}
	t.Setenv("BENCH_FORMATS", "zarr/lz4")
	if _, err := Variants(); err == nil || !strings.Contains(err.Error(), `no variant "zarr/lz4"`) {
		t.Errorf("unknown variant: got error %v", err)
	}
}

func TestCheckpointPathPerVariant(t *testing.T) {
	seen := map[string]string{}
	for _, v := range registry {
		p := filepath.Dir(setup.CheckpointPath(v))
		if other, ok := seen[p]; ok {
			t.Errorf("%s and %s share checkpoint directory %s", v.ID, other, p)
		}
		seen[p] = v.ID
	}
}
