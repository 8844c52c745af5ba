package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const header = "cpu: test\nweights: synthetic (seed 1)\n"

// result returns one result line of name with a time in seconds and the
// throughput that tensorBytes in that time gives, as the harness writes.
func result(name string, seconds, tensorBytes, diskBytes float64) string {
	return fmt.Sprintf("Benchmark%s-2 1 %.0f ns/op %.2f MB/s %.0f disk-B 1 files 1e9 peak-RSS-B",
		name, seconds*1e9, tensorBytes/seconds/1e6, diskBytes)
}

// runOf writes lines, each repeated five times so that every row has
// enough samples for a U test, into a results directory and loads it.
func runOf(t *testing.T, lines ...string) *Run {
	t.Helper()
	dir := t.TempDir()
	writeRunFile(t, dir, "run.txt", header, lines)
	r, err := LoadRun(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func writeRunFile(t *testing.T, dir, name, header string, lines []string) {
	t.Helper()
	var b strings.Builder
	b.WriteString(header)
	for _, l := range lines {
		for range 5 {
			b.WriteString(l + "\n")
		}
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

const gb = 1e9

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-3*math.Abs(b) }

func TestLimitIsTheBetterStreamCount(t *testing.T) {
	r := runOf(t,
		// One stream writes faster here, 16 in flight reads faster.
		result("Save/format=disk/streams=1/model=m", 2, 4*gb, 4*gb),
		result("Save/format=disk/streams=16/model=m", 4, 4*gb, 4*gb),
		result("Load/format=disk/streams=1/model=m/cache=cold", 4, 4*gb, 4*gb),
		result("Load/format=disk/streams=16/model=m/cache=cold", 2, 4*gb, 4*gb),
		result("Load/format=disk/streams=1/model=m/cache=warm", 0.25, 4*gb, 4*gb),
		result("Save/format=zarr/codec=raw/model=m", 5, 4*gb, 4*gb),
	)
	for _, tc := range []struct {
		op          Op
		refs        int
		bestStreams string
		rate        float64
	}{
		{opSave, 2, "1", 2 * gb},
		{opCold, 2, "16", 2 * gb},
		{opWarm, 1, "1", 16 * gb},
	} {
		l := r.Limit(tc.op)
		if len(l.Refs) != tc.refs {
			t.Errorf("%s: %d disk references, want %d", tc.op, len(l.Refs), tc.refs)
		}
		if l.Best == nil || l.Best.Variant.Streams != tc.bestStreams {
			t.Errorf("%s: limit set by %v, want streams=%s", tc.op, l.Best, tc.bestStreams)
			continue
		}
		if !near(l.Rate(), tc.rate) {
			t.Errorf("%s: limit %g B/s, want %g", tc.op, l.Rate(), tc.rate)
		}
	}

	zarr := r.Cell(Variant{Format: "zarr", Codec: "raw"}, opSave)
	f, ok := FractionOfLimit(zarr, r.Limit(opSave))
	if !ok || !near(f, 0.4) {
		t.Errorf("zarr/raw save at 0.8 GB/s against a 2 GB/s limit: fraction %g (ok %v), want 0.4", f, ok)
	}
}

func TestNoDiskReferenceMeansNoLimit(t *testing.T) {
	r := runOf(t, result("Save/format=zarr/codec=raw/model=m", 5, 4*gb, 4*gb))
	l := r.Limit(opSave)
	if l.Best != nil || l.Rate() != 0 {
		t.Errorf("limit without a disk reference: best %v, rate %g", l.Best, l.Rate())
	}
	if _, ok := FractionOfLimit(r.Cell(Variant{Format: "zarr", Codec: "raw"}, opSave), l); ok {
		t.Error("FractionOfLimit reports a fraction without a limit")
	}
}

func TestSpeedupOverTorchsave(t *testing.T) {
	r := runOf(t,
		result("Save/format=torchsave/model=m", 10, 4*gb, 4*gb),
		result("Save/format=safetensors/model=m", 4, 4*gb, 4*gb),
	)
	base := r.Cell(baseline, opSave)
	s, ok := SpeedupOver(r.Cell(Variant{Format: "safetensors"}, opSave), base)
	if !ok || !near(s, 2.5) {
		t.Errorf("4 s against torchsave's 10 s: speedup %g (ok %v), want 2.5", s, ok)
	}
	if s, _ := SpeedupOver(base, base); !near(s, 1) {
		t.Errorf("torchsave against itself: %g, want 1", s)
	}
	if _, ok := SpeedupOver(r.Cell(Variant{Format: "absent"}, opSave), base); ok {
		t.Error("speedup of a missing cell")
	}
}

func TestCompressionRatioUsesTensorBytes(t *testing.T) {
	r := runOf(t, result("Save/format=zarr/codec=gzip/model=m", 8, 4*gb, 3.2*gb))
	c := r.Cell(Variant{Format: "zarr", Codec: "gzip"}, opSave)
	if !near(c.TensorBytes, 4*gb) {
		t.Errorf("tensor bytes from B/s × sec/op: %g, want %g", c.TensorBytes, 4*gb)
	}
	ratio, ok := CompressionRatio(c)
	if !ok || !near(ratio, 1.25) {
		t.Errorf("4 GB in 3.2 GB: ratio %g (ok %v), want 1.25", ratio, ok)
	}
}

func TestMissingNamesAbsentApproaches(t *testing.T) {
	r := runOf(t,
		result("Save/format=zarr/codec=raw/model=m", 5, 4*gb, 4*gb),
		result("Load/format=zarr/codec=raw/model=m/cache=cold", 5, 4*gb, 4*gb),
		// A codec on a format expected without one still counts.
		result("Save/format=safetensors/codec=mmap/model=m", 5, 4*gb, 4*gb),
		result("Load/format=safetensors/codec=mmap/model=m/cache=cold", 5, 4*gb, 4*gb),
		result("Load/format=safetensors/codec=mmap/model=m/cache=warm", 5, 4*gb, 4*gb),
		result("Load/format=py-torch-mmap/model=m/cache=cold", 5, 4*gb, 4*gb),
		result("Load/format=py-torch-mmap/model=m/cache=warm", 5, 4*gb, 4*gb),
	)
	missing := strings.Join(r.Missing(), "; ")
	for _, want := range []string{"zarr/raw (warm load)", "zarr/gzip (all)", "torchsave (all)", "disk/streams=16 (all)"} {
		if !strings.Contains(missing, want) {
			t.Errorf("Missing() = %q, lacks %q", missing, want)
		}
	}
	for _, entry := range r.Missing() {
		for _, present := range []string{"safetensors", "py-torch-mmap"} {
			if strings.HasPrefix(entry, present+" (") {
				t.Errorf("Missing() names %q, but %s is complete", entry, present)
			}
		}
	}
}

func TestLoadRunErrors(t *testing.T) {
	empty := t.TempDir()
	if _, err := LoadRun(empty, ""); err == nil || !strings.Contains(err.Error(), "no *.txt result files") {
		t.Errorf("empty directory: %v", err)
	}

	mixed := t.TempDir()
	writeRunFile(t, mixed, "a.txt", header, []string{
		result("Save/format=zarr/codec=raw/model=a", 5, 4*gb, 4*gb),
		result("Save/format=zarr/codec=raw/model=b", 5, 4*gb, 4*gb),
	})
	if _, err := LoadRun(mixed, ""); err == nil || !strings.Contains(err.Error(), "choose one with -model") {
		t.Errorf("two models: %v", err)
	}
	r, err := LoadRun(mixed, "b")
	if err != nil {
		t.Fatalf("-model b: %v", err)
	}
	if len(r.Cells) != 1 || r.Model != "b" {
		t.Errorf("-model b kept %d cells of model %q", len(r.Cells), r.Model)
	}
	if _, err := LoadRun(mixed, "c"); err == nil || !strings.Contains(err.Error(), "no results for model=c") {
		t.Errorf("-model c: %v", err)
	}

	bad := t.TempDir()
	writeRunFile(t, bad, "bad.txt", header, []string{"BenchmarkSave/format=zarr/model=m-2 1 12x ns/op"})
	if _, err := LoadRun(bad, ""); err == nil || !strings.Contains(err.Error(), "bad.txt:3") {
		t.Errorf("malformed line: %v", err)
	}

	other := t.TempDir()
	writeRunFile(t, other, "other.txt", header, []string{"BenchmarkSomething-2 1 5 ns/op"})
	if _, err := LoadRun(other, ""); err == nil || !strings.Contains(err.Error(), "no BenchmarkSave or BenchmarkLoad") {
		t.Errorf("no Save or Load results: %v", err)
	}
}

func TestWeightsBanner(t *testing.T) {
	dir := t.TempDir()
	writeRunFile(t, dir, "a.txt", "weights: synthetic (seed 1)\n", []string{result("Save/format=zarr/codec=raw/model=m", 5, 4*gb, 4*gb)})
	writeRunFile(t, dir, "b.txt", "weights: hf models/x\n", []string{result("Save/format=t5x/codec=raw/model=m", 5, 4*gb, 4*gb)})
	r, err := LoadRun(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if r.WeightsKind() != weightsMixed {
		t.Fatalf("weights kind %v, want mixed", r.WeightsKind())
	}
	var b strings.Builder
	writeWeightsBanner(&b, r)
	for _, want := range []string{"Mixed weights", "synthetic (seed 1)` in a.txt", "hf models/x` in b.txt"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, b.String())
		}
	}
}

func TestFindingsFollowTheNumbers(t *testing.T) {
	r := runOf(t,
		result("Save/format=disk/streams=1/model=m", 2, 4*gb, 4*gb),
		result("Save/format=torchsave/model=m", 10, 4*gb, 4*gb),
		result("Save/format=zarr/codec=raw/model=m", 2.2, 4*gb, 4*gb),
		result("Save/format=zarr/codec=gzip/model=m", 20, 4*gb, 3.2*gb),
	)
	lines := strings.Join(opFindings(r, opSave), "\n")
	for _, want := range []string{
		"zarr/raw is fastest, 2.2 s",
		"91% of the disk limit",
		"4.55× torchsave's speed",
		"Slowest save: zarr/gzip, 20 s",
		"Below 85% of the save limit",
		"torchsave 20%",
		"zarr/gzip 10%",
	} {
		if !strings.Contains(lines, want) {
			t.Errorf("findings lack %q:\n%s", want, lines)
		}
	}
	if strings.Contains(lines, "zarr/raw 91%") {
		t.Errorf("findings list zarr/raw, at 91%%, as below 85%%:\n%s", lines)
	}
	size := strings.Join(sizeFindings(&Report{Run: r}), "\n")
	if !strings.Contains(size, "zarr/gzip") || !strings.Contains(size, "ratio 1.250") {
		t.Errorf("size findings do not name zarr/gzip at 1.250:\n%s", size)
	}
}

func TestFindingsAboveTheLimit(t *testing.T) {
	r := runOf(t,
		result("Load/format=disk/streams=1/model=m/cache=warm", 4, 4*gb, 4*gb),
		result("Load/format=safetensors/model=m/cache=warm", 1, 4*gb, 4*gb),
		result("Load/format=zarr/codec=raw/model=m/cache=warm", 2, 4*gb, 4*gb),
	)
	lines := strings.Join(opFindings(r, opWarm), "\n")
	want := "Faster than the disk reference's warm load: safetensors 400%, zarr/raw 200%, so the reference is no upper bound"
	if !strings.Contains(lines, want) {
		t.Errorf("findings lack %q:\n%s", want, lines)
	}
}

func TestFindingsWithTooFewRuns(t *testing.T) {
	dir := t.TempDir()
	lines := []string{
		result("Save/format=zarr/codec=raw/model=m", 2, 4*gb, 4*gb),
		result("Save/format=t5x/codec=raw/model=m", 3, 4*gb, 4*gb),
	}
	// Two runs each: no U test can reach p <= 0.05.
	text := header + lines[0] + "\n" + lines[0] + "\n" + lines[1] + "\n" + lines[1] + "\n"
	if err := os.WriteFile(filepath.Join(dir, "run.txt"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := LoadRun(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(opFindings(r, opSave), "\n")
	if !strings.Contains(got, "too few runs to tell it from the runner-up t5x/raw") {
		t.Errorf("findings do not say the runs are too few:\n%s", got)
	}
}

func TestModelChoiceKeepsItsConfiguration(t *testing.T) {
	dir := t.TempDir()
	writeRunFile(t, dir, "a.txt", "tensor-bytes: 1000\n", []string{result("Save/format=zarr/codec=raw/model=a", 5, 1000, 1000)})
	writeRunFile(t, dir, "b.txt", "tensor-bytes: 2000\n", []string{
		result("Save/format=zarr/codec=raw/model=b", 5, 2000, 1000),
		// A load without cache=cold or cache=warm has no table to go to.
		result("Load/format=zarr/codec=raw/model=b", 5, 2000, 1000),
	})
	r, err := LoadRun(dir, "b")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.ConfigValue("tensor-bytes"); got != "2000" {
		t.Errorf("tensor-bytes of model b: %q, want 2000", got)
	}
	c := r.Cell(Variant{Format: "zarr", Codec: "raw"}, opSave)
	if ratio, ok := CompressionRatio(c); !ok || !near(ratio, 2) {
		t.Errorf("compression ratio %g (ok %v), want 2", ratio, ok)
	}
	if len(r.Ignored) != 1 || !strings.Contains(r.Ignored[0], "Load/format=zarr/codec=raw/model=b-2") {
		t.Errorf("ignored %q, want the load without a cache key", r.Ignored)
	}
}
