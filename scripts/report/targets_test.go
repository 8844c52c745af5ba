package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ckptbench/formats/t5x"
)

// targetsRun is a hand-made run with t5x targets met, missed and not
// measured, a NOTES.md and two profiles; see testdata/README.md.
var targetsRun = filepath.Join("testdata", "targets-run")

// findTarget returns the target of v for op against against, failing the
// test when there is none.
func findTarget(t *testing.T, sets []TargetSet, v Variant, op Op, kind targetKind, against string) Target {
	t.Helper()
	for _, set := range sets {
		if set.Variant != v {
			continue
		}
		for _, target := range set.Targets {
			if target.Op == op && target.Kind == kind && (kind == kindMemory || target.Against == against) {
				return target
			}
		}
	}
	t.Fatalf("no %s %s target against %q", v, op, against)
	return Target{}
}

var (
	t5xRaw  = Variant{Format: "t5x", Codec: "raw"}
	t5xGzip = Variant{Format: "t5x", Codec: "gzip"}
	t5xZstd = Variant{Format: "t5x", Codec: "zstd"}
)

func TestTargetsMetAndMissed(t *testing.T) {
	r := runOf(t,
		result("Save/format=disk/streams=1/model=m", 2, 4*gb, 4*gb),
		result("Save/format=disk/streams=16/model=m", 1, 4*gb, 4*gb),
		result("Load/format=disk/streams=16/model=m/cache=cold", 2, 4*gb, 4*gb),
		result("Save/format=zarr/codec=raw/model=m", 3.3, 4*gb, 4*gb),
		result("Load/format=zarr/codec=raw/model=m/cache=cold", 2.9, 4*gb, 4*gb),
		result("Save/format=torchsave/model=m", 1.1, 4*gb, 4*gb),
		result("Save/format=py-tensorstore/model=m", 6, 4*gb, 4*gb),
		// 4 GB/s against 4 GB/s for the save, 1.6 GB/s against 2 for the cold load.
		result("Save/format=t5x/codec=raw/model=m", 1, 4*gb, 4*gb),
		result("Load/format=t5x/codec=raw/model=m/cache=cold", 2.5, 4*gb, 4*gb),
	)
	sets := Targets(r, byteBudget{Bytes: 1 * gb})

	for _, tc := range []struct {
		op       Op
		kind     targetKind
		against  string
		measured float64
		status   targetStatus
	}{
		{opSave, kindLimit, "disk/streams=16", 1, met},
		{opCold, kindLimit, "disk/streams=16", 0.8, missed},
		{opSave, kindSpeedup, "zarr/raw", 3.3, met},
		{opCold, kindSpeedup, "zarr/raw", 1.16, missed},
		{opSave, kindSpeedup, "py-tensorstore", 6, met},
		{opSave, kindSpeedup, "torchsave", 1.1, met},
	} {
		got := findTarget(t, sets, t5xRaw, tc.op, tc.kind, tc.against)
		if got.Status != tc.status {
			t.Errorf("%s against %s: status %v, want %v", tc.op, tc.against, got.Status, tc.status)
		}
		if !near(got.Measured, tc.measured) {
			t.Errorf("%s against %s: measured %g, want %g", tc.op, tc.against, got.Measured, tc.measured)
		}
	}

	// The save's peak RSS in the fixture lines is 1e9 bytes, within 4 GB
	// of tensors plus 1 GB of budget.
	memory := findTarget(t, sets, t5xRaw, opSave, kindMemory, "")
	if memory.Status != met || !near(memory.Goal, 5*gb) || !near(memory.Measured, 1e9) {
		t.Errorf("memory target: status %v, goal %g, measured %g; want met, 5e9, 1e9", memory.Status, memory.Goal, memory.Measured)
	}
}

func TestTargetsOnTheGoalAreMet(t *testing.T) {
	r := runOf(t,
		result("Save/format=zarr/codec=gzip/model=m", 3, 4*gb, 4*gb),
		result("Save/format=torchsave/model=m", 2, 4*gb, 4*gb),
		result("Save/format=t5x/codec=gzip/model=m", 2, 4*gb, 4*gb),
	)
	sets := Targets(r, byteBudget{Bytes: 1 * gb})
	if got := findTarget(t, sets, t5xGzip, opSave, kindSpeedup, "zarr/gzip"); got.Status != met {
		t.Errorf("exactly 1.5× zarr/gzip: status %v, want met", got.Status)
	}
	if got := findTarget(t, sets, t5xGzip, opSave, kindSpeedup, "torchsave"); got.Status != met {
		t.Errorf("as fast as torchsave: status %v, want met", got.Status)
	}
}

func TestTargetsNotMeasured(t *testing.T) {
	r := runOf(t,
		result("Save/format=t5x/codec=raw/model=m", 1, 4*gb, 4*gb),
		result("Load/format=zarr/codec=raw/model=m/cache=cold", 2, 4*gb, 4*gb),
	)
	sets := Targets(r, byteBudget{Bytes: 1 * gb})
	for _, tc := range []struct {
		v       Variant
		op      Op
		kind    targetKind
		against string
		reason  string
	}{
		{t5xRaw, opSave, kindLimit, "", "no disk reference for the save in this run"},
		{t5xRaw, opSave, kindSpeedup, "zarr/raw", "no zarr/raw save in this run"},
		{t5xRaw, opSave, kindSpeedup, "py-t5x", "no py-t5x save in this run"},
		{t5xRaw, opCold, kindSpeedup, "zarr/raw", "no t5x/raw cold load in this run"},
		{t5xZstd, opSave, kindSpeedup, "torchsave", "no t5x/zstd save in this run"},
		{t5xZstd, opSave, kindMemory, "", "no peak RSS of a t5x/zstd save in this run"},
	} {
		got := findTarget(t, sets, tc.v, tc.op, tc.kind, tc.against)
		if got.Status != notMeasured {
			t.Errorf("%s %s against %q: status %v, want not measured", tc.v, tc.op, tc.against, got.Status)
		}
		if got.Reason != tc.reason {
			t.Errorf("%s %s against %q: reason %q, want %q", tc.v, tc.op, tc.against, got.Reason, tc.reason)
		}
	}
	if n := len(sets); n != 3 {
		t.Errorf("%d t5x variants checked, want raw, gzip and zstd", n)
	}
}

func TestMemoryTargetMissed(t *testing.T) {
	// result() reports 1e9 bytes of peak RSS: over 0.5 GB of tensors
	// plus a 0.25 GB budget by 0.25 GB.
	r := runOf(t, result("Save/format=t5x/codec=gzip/model=m", 1, 0.5*gb, 0.5*gb))
	got := findTarget(t, Targets(r, byteBudget{Bytes: 0.25 * gb}), t5xGzip, opSave, kindMemory, "")
	if got.Status != missed {
		t.Fatalf("status %v, want missed", got.Status)
	}
	if want := "over by 250.000 MB (33% of the bound)"; got.Shortfall() != want {
		t.Errorf("shortfall %q, want %q", got.Shortfall(), want)
	}
}

func TestMemoryTargetWithoutBudget(t *testing.T) {
	r := runOf(t, result("Save/format=t5x/codec=gzip/model=m", 1, 4*gb, 4*gb))
	got := findTarget(t, Targets(r, byteBudget{Source: "files disagree"}), t5xGzip, opSave, kindMemory, "")
	if got.Status != notMeasured || got.Reason != "files disagree" {
		t.Errorf("status %v, reason %q; want not measured because the files disagree", got.Status, got.Reason)
	}
}

func TestShortfall(t *testing.T) {
	for _, tc := range []struct {
		target Target
		want   string
	}{
		{Target{Kind: kindLimit, Goal: 0.85, Measured: 0.5}, "needs 1.70× its throughput"},
		{Target{Kind: kindSpeedup, Goal: 1.5, Measured: 1.2}, "needs 1.25× its speed (20% less time)"},
		{Target{Kind: kindSpeedup, Goal: 1, Measured: 0.25}, "needs 4.00× its speed (75% less time)"},
	} {
		if got := tc.target.Shortfall(); got != tc.want {
			t.Errorf("goal %g, measured %g: %q, want %q", tc.target.Goal, tc.target.Measured, got, tc.want)
		}
	}
}

func TestByteBudgetFromResults(t *testing.T) {
	line := result("Save/format=t5x/codec=raw/model=m", 1, 4*gb, 4*gb)
	for _, tc := range []struct {
		name    string
		headers []string // one results file per header
		bytes   float64
		assumed bool
		source  string
	}{
		{"line", []string{"t5x-byte-budget: 536870912\n"}, 536870912, false, "from the results' `t5x-byte-budget` line"},
		{"absent", []string{""}, t5x.DefaultByteBudget, true, "formats/t5x's DefaultByteBudget"},
		{"invalid", []string{"t5x-byte-budget: 1GiB\n"}, 0, false, "`t5x-byte-budget: 1GiB` in f0.txt is not a positive whole number"},
		{"negative", []string{"t5x-byte-budget: -1\n"}, 0, false, "is not a positive whole number"},
		{"disagree", []string{"t5x-byte-budget: 1024\n", "t5x-byte-budget: 2048\n"}, 0, false, "the result files disagree on `t5x-byte-budget`: \"1024\" in f0.txt; \"2048\" in f1.txt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for i, h := range tc.headers {
				writeRunFile(t, dir, "f"+string(rune('0'+i))+".txt", header+h, []string{line})
			}
			r, err := LoadRun(dir, "")
			if err != nil {
				t.Fatal(err)
			}
			b := runByteBudget(r)
			if b.Bytes != tc.bytes {
				t.Errorf("bytes %g, want %g", b.Bytes, tc.bytes)
			}
			if b.Assumed != tc.assumed {
				t.Errorf("assumed %v, want %v", b.Assumed, tc.assumed)
			}
			if !strings.Contains(b.Source, tc.source) {
				t.Errorf("source %q lacks %q", b.Source, tc.source)
			}
		})
	}
}

func TestVerifyCopiesAreNotPooled(t *testing.T) {
	r := runOf(t,
		result("Load/format=zarr/codec=raw/model=m/cache=cold", 2, 4*gb, 4*gb),
		result("Load/format=zarr/codec=raw/verify=load/model=m/cache=cold", 3, 4*gb, 4*gb),
	)
	plain := r.Cell(Variant{Format: "zarr", Codec: "raw"}, opCold)
	verify := r.Cell(Variant{Format: "zarr", Codec: "raw", Verify: "load"}, opCold)
	if plain == nil || verify == nil {
		t.Fatalf("cells: plain %v, verify %v; want both", plain, verify)
	}
	if !near(plain.Stat(unitTime).Median(), 2) || !near(verify.Stat(unitTime).Median(), 3) {
		t.Errorf("medians: plain %g s, verify %g s; want 2 and 3", plain.Stat(unitTime).Median(), verify.Stat(unitTime).Median())
	}
	if got := verify.Variant.String(); got != "zarr/raw+verify" {
		t.Errorf("label %q, want zarr/raw+verify", got)
	}
	if len(r.Variants) != 2 || r.Variants[0] != plain.Variant {
		t.Errorf("variants %v, want zarr/raw then its verifying copy", r.Variants)
	}
	if len(r.Warnings) != 0 {
		t.Errorf("warnings %q, want none", r.Warnings)
	}
}

// TestTargetsGolden regenerates comparison.md from testdata/targets-run
// and compares it with testdata/targets.golden.md. Run
// `go test ./scripts/report -update` after an intended change.
func TestTargetsGolden(t *testing.T) {
	out := t.TempDir()
	if code := run([]string{"-results", targetsRun, "-out", out, "-charts", filepath.Join(out, "charts")}, os.Stderr); code != 0 {
		t.Fatalf("report exited %d", code)
	}
	got, err := os.ReadFile(filepath.Join(out, "comparison.md"))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "targets.golden.md")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (create it with go test ./scripts/report -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("comparison.md differs from %s; rerun with -update if the change is intended:\n%s", golden, lineDiff(string(want), string(got)))
	}

	text := string(got)
	notes, err := os.ReadFile(filepath.Join(targetsRun, "NOTES.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "## Run notes\n") || !strings.Contains(text, string(notes)) {
		t.Errorf("comparison.md does not include NOTES.md verbatim under Run notes")
	}
	for _, want := range []string{
		// A missed target with a profile shows its top functions.
		"#### t5x/gzip save: missed targets",
		"CPU profile `profiles/t5x-gzip-save.txt`",
		"| 19.87% | 19.87% | `internal/runtime/syscall/linux.Syscall6` |",
		// A missed target without one names the command.
		"RESULTS=" + targetsRun + " FORMATS=t5x/gzip OPS=load-warm scripts/profile.sh",
		// A variant missing from the run.
		"No t5x/zstd results in this run, so none of its 15 targets is measured.",
		"| save | tensor bytes + byte budget | peak RSS ≤ 7.927 GB | 8.200 GB | **missed**: over by 273.311 MB (3% of the bound) |",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("comparison.md lacks %q", want)
		}
	}
	// t5x/raw's save meets every measured target, so it has no profile
	// section.
	if strings.Contains(text, "#### t5x/raw save") {
		t.Errorf("comparison.md has a missed-target section for t5x/raw's save, which misses nothing")
	}
}

func TestNoNotesNoSection(t *testing.T) {
	out := t.TempDir()
	if code := run([]string{"-results", syntheticRun, "-out", out, "-charts", filepath.Join(out, "charts")}, os.Stderr); code != 0 {
		t.Fatalf("report exited %d", code)
	}
	got, err := os.ReadFile(filepath.Join(out, "comparison.md"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(got), "## Run notes") {
		t.Error("comparison.md has a Run notes section without a NOTES.md")
	}
	if !strings.Contains(string(got), "assumed: the results have no `t5x-byte-budget` line") {
		t.Error("comparison.md does not say the byte budget was assumed")
	}
}
