package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/perf/benchfmt"
)

// The recorded fixtures: real runs of the stand-in benchmark, made by
// scripts/gate/testdata/record.sh.
var (
	reruns = []string{
		fixture("rerun-1.txt"), fixture("rerun-2.txt"),
		fixture("rerun-3.txt"), fixture("rerun-4.txt"),
	}
	slow30 = fixture("slow30.txt")
)

func fixture(name string) string {
	return filepath.Join("..", "..", "testdata", "results", "gate", name)
}

// runGate runs the command with args and returns its exit status and
// output.
func runGate(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String() + stderr.String()
}

// writeResults writes a results file of lines under a header into a
// temporary directory and returns its path.
func writeResults(t *testing.T, name string, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	text := "goos: linux\ncpu: test\n" + strings.Join(lines, "\n") + "\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// repeat returns one result line of benchmark name per value, in unit.
func repeat(name, unit string, values ...float64) []string {
	var lines []string
	for _, v := range values {
		lines = append(lines, fmt.Sprintf("%s 1 %g %s", name, v, unit))
	}
	return lines
}

func findRow(t *testing.T, rep *Report, name, unit string) Row {
	t.Helper()
	for _, row := range rep.Rows {
		if row.Name == name && row.Unit == unit {
			return row
		}
	}
	t.Fatalf("no row %s %s in the report", name, unit)
	return Row{}
}

func compareFiles(t *testing.T, oldPath, newPath string, opts Options) *Report {
	t.Helper()
	oldSet, err := ReadSet(oldPath)
	if err != nil {
		t.Fatal(err)
	}
	newSet, err := ReadSet(newPath)
	if err != nil {
		t.Fatal(err)
	}
	return Compare(oldSet, newSet, opts)
}

var defaults = Options{Threshold: defaultThreshold, Alpha: 0.05}

func TestRerunsOfUnchangedCodePass(t *testing.T) {
	for i := range reruns {
		for j := range reruns {
			if i == j {
				continue
			}
			code, out := runGate(t, reruns[i], reruns[j])
			if code != 0 {
				t.Errorf("gate %s %s: exit %d, want 0\n%s", reruns[i], reruns[j], code, out)
			}
		}
	}
}

func TestSlowdownOf30PercentFails(t *testing.T) {
	code, out := runGate(t, reruns[0], slow30)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	if !strings.Contains(out, "gate: FAIL") {
		t.Errorf("output lacks the FAIL verdict:\n%s", out)
	}
	rep := compareFiles(t, reruns[0], slow30, defaults)
	for _, name := range []string{
		"Save/format=standin/model=tiny_llama",
		"Load/format=standin/model=tiny_llama/cache=warm",
	} {
		if row := findRow(t, rep, name, "sec/op"); row.Verdict != Regression {
			t.Errorf("%s sec/op: verdict %v (delta %s, p %.3g), want %v", name, row.Verdict, formatDelta(row.Delta), row.Comparison.P, Regression)
		}
		if row := findRow(t, rep, name, "B/s"); row.Verdict != Regression {
			t.Errorf("%s B/s: verdict %v (delta %s, p %.3g), want %v", name, row.Verdict, formatDelta(row.Delta), row.Comparison.P, Regression)
		}
	}
}

func TestFasterResultPasses(t *testing.T) {
	code, out := runGate(t, slow30, reruns[0])
	if code != 0 {
		t.Fatalf("exit %d, want 0\n%s", code, out)
	}
	rep := compareFiles(t, slow30, reruns[0], defaults)
	if row := findRow(t, rep, "Save/format=standin/model=tiny_llama", "sec/op"); row.Verdict != Better {
		t.Errorf("save sec/op: verdict %v, want %v", row.Verdict, Better)
	}
}

func TestEmptyInputFails(t *testing.T) {
	empty := writeResults(t, "empty.txt")
	for _, args := range [][]string{{empty, reruns[0]}, {reruns[0], empty}, {empty, empty}} {
		code, out := runGate(t, args...)
		if code != 1 {
			t.Errorf("gate %s: exit %d, want 1\n%s", args, code, out)
		}
		if !strings.Contains(out, "has no benchmark results") {
			t.Errorf("gate %s: output does not say an input is empty:\n%s", args, out)
		}
	}
}

func TestMismatchedInputFails(t *testing.T) {
	other := writeResults(t, "other.txt",
		repeat("BenchmarkSave/format=zarr/codec=gzip/model=open_llama_3b-2", "ns/op", 1, 2, 3, 4, 5)...)
	code, out := runGate(t, "-allow-missing", reruns[0], other)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	if !strings.Contains(out, "no benchmark is in both") {
		t.Errorf("output does not say the inputs share no benchmark:\n%s", out)
	}
}

func TestMissingRowFailsUnlessAllowed(t *testing.T) {
	name := "BenchmarkSave/format=zarr/model=tiny_llama-2"
	oldPath := writeResults(t, "old.txt", append(
		repeat(name, "ns/op", 10, 11, 12, 10, 11),
		repeat("BenchmarkSave/format=t5x/model=tiny_llama-2", "ns/op", 10, 11, 12, 10, 11)...)...)
	newPath := writeResults(t, "new.txt", repeat(name, "ns/op", 10, 11, 12, 10, 11)...)

	code, out := runGate(t, oldPath, newPath)
	if code != 1 {
		t.Errorf("exit %d, want 1\n%s", code, out)
	}
	if !strings.Contains(out, "MISSING in new") {
		t.Errorf("output does not name the missing row:\n%s", out)
	}
	if code, out := runGate(t, "-allow-missing", oldPath, newPath); code != 0 {
		t.Errorf("with -allow-missing: exit %d, want 0\n%s", code, out)
	}
}

func TestTooFewSamplesFails(t *testing.T) {
	name := "BenchmarkLoad/format=zarr/model=tiny_llama/cache=cold-2"
	oldPath := writeResults(t, "old.txt", repeat(name, "ns/op", 100, 101, 102)...)
	newPath := writeResults(t, "new.txt", repeat(name, "ns/op", 100, 102, 101)...)
	code, out := runGate(t, oldPath, newPath)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	if !strings.Contains(out, "TOO FEW SAMPLES") || !strings.Contains(out, "3+3 samples") {
		t.Errorf("output does not explain the sample size:\n%s", out)
	}
}

func TestMalformedLineFails(t *testing.T) {
	bad := writeResults(t, "bad.txt", "BenchmarkSave/format=zarr/model=tiny_llama-2 1 12x ns/op")
	code, out := runGate(t, reruns[0], bad)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	if !strings.Contains(out, "bad.txt:3:") {
		t.Errorf("output does not point at the malformed line:\n%s", out)
	}
}

func TestUnreadableInputFails(t *testing.T) {
	code, out := runGate(t, reruns[0], filepath.Join(t.TempDir(), "absent.txt"))
	if code != 1 {
		t.Errorf("exit %d, want 1\n%s", code, out)
	}
}

func TestInvalidCommandLine(t *testing.T) {
	for _, args := range [][]string{
		{reruns[0]},
		{"-threshold", "-1", reruns[0], reruns[1]},
		{"-alpha", "0", reruns[0], reruns[1]},
		{"-no-such-flag", reruns[0], reruns[1]},
	} {
		if code, out := runGate(t, args...); code != 2 {
			t.Errorf("gate %q: exit %d, want 2\n%s", args, code, out)
		}
	}
}

// TestDirectionOfUnits checks that each unit's bad direction fails and
// its good direction passes, on samples that do not overlap.
func TestDirectionOfUnits(t *testing.T) {
	name := "BenchmarkSave/format=zarr/model=tiny_llama-2"
	low := []float64{100, 101, 102, 103, 104, 105}
	high := []float64{150, 151, 152, 153, 154, 155}
	for _, tc := range []struct {
		unit       string
		higherFail bool // whether going from low to high values is a regression
	}{
		{"ns/op", true},
		{"disk-B", true},
		{"peak-RSS-B", true},
		{"B/op", true},
		{"MB/s", false},
	} {
		lowPath := writeResults(t, "low.txt", repeat(name, tc.unit, low...)...)
		highPath := writeResults(t, "high.txt", repeat(name, tc.unit, high...)...)
		up, _ := runGate(t, lowPath, highPath)
		down, _ := runGate(t, highPath, lowPath)
		if tc.higherFail && (up != 1 || down != 0) {
			t.Errorf("%s: up exits %d, down exits %d; want 1 and 0", tc.unit, up, down)
		}
		if !tc.higherFail && (up != 0 || down != 1) {
			t.Errorf("%s: up exits %d, down exits %d; want 0 and 1", tc.unit, up, down)
		}
	}
}

func TestConstantBytesGrowthFails(t *testing.T) {
	// disk-B does not vary between runs; the U test still separates
	// two constant samples that differ.
	name := "BenchmarkSave/format=zarr/model=tiny_llama-2"
	oldPath := writeResults(t, "old.txt", repeat(name, "disk-B", 1000, 1000, 1000, 1000, 1000)...)
	newPath := writeResults(t, "new.txt", repeat(name, "disk-B", 1200, 1200, 1200, 1200, 1200)...)
	if code, out := runGate(t, oldPath, newPath); code != 1 {
		t.Errorf("exit %d, want 1\n%s", code, out)
	}
}

func TestChangeWithinThresholdPasses(t *testing.T) {
	name := "BenchmarkSave/format=zarr/model=tiny_llama-2"
	oldPath := writeResults(t, "old.txt", repeat(name, "ns/op", 100, 100.5, 101, 101.5, 102, 102.5)...)
	newPath := writeResults(t, "new.txt", repeat(name, "ns/op", 105, 105.5, 106, 106.5, 107, 107.5)...)
	rep := compareFiles(t, oldPath, newPath, defaults)
	row := findRow(t, rep, "Save/format=zarr/model=tiny_llama", "sec/op")
	if row.Verdict != WorseWithin {
		t.Errorf("verdict %v (delta %s, p %.3g), want %v", row.Verdict, formatDelta(row.Delta), row.Comparison.P, WorseWithin)
	}
	if !rep.Pass() {
		t.Error("a 5% slowdown fails a 10% threshold")
	}
	strict := compareFiles(t, oldPath, newPath, Options{Threshold: 0.02, Alpha: 0.05})
	if strict.Pass() {
		t.Error("a 5% slowdown passes a 2% threshold")
	}
}

func TestGOMAXPROCSIsNotPartOfTheRow(t *testing.T) {
	values := []float64{100, 101, 102, 103, 104}
	oldPath := writeResults(t, "old.txt", repeat("BenchmarkSave/format=zarr/model=tiny_llama-2", "ns/op", values...)...)
	newPath := writeResults(t, "new.txt", repeat("BenchmarkSave/format=zarr/model=tiny_llama-4", "ns/op", values...)...)
	code, out := runGate(t, oldPath, newPath)
	if code != 0 {
		t.Errorf("exit %d, want 0\n%s", code, out)
	}
	if !strings.Contains(out, "GOMAXPROCS differs") {
		t.Errorf("output does not warn about GOMAXPROCS:\n%s", out)
	}
}

func TestBetterDirection(t *testing.T) {
	declared := writeResults(t, "units.txt",
		"Unit files better=lower",
		"Unit score better=higher",
		"BenchmarkX-2 1 1 files 1 score 1 ns/op")
	set, err := ReadSet(declared)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		units benchfmt.UnitMetadataMap
		unit  string
		want  int
	}{
		{nil, "sec/op", -1},
		{nil, "B/s", 1},
		{nil, "disk-B", -1},
		{nil, "peak-RSS-B", -1},
		{nil, "files", 0},
		{set.Units, "files", -1},
		{set.Units, "score", 1},
	} {
		if got := betterDirection(tc.units, tc.unit); got != tc.want {
			t.Errorf("betterDirection(%s) = %d, want %d", tc.unit, got, tc.want)
		}
	}
}

// TestCalibrationNoise recomputes the figures behind defaultThreshold
// from the recorded reruns with 10 or more iterations per sample: the
// largest change of medians among rows the U test calls significant, and
// the largest change of a time or rate row.
func TestCalibrationNoise(t *testing.T) {
	for _, sets := range [][]string{reruns, {
		fixture("bench-tiny-10x/rerun-1.txt"), fixture("bench-tiny-10x/rerun-2.txt"),
		fixture("bench-tiny-10x/rerun-3.txt"), fixture("bench-tiny-10x/rerun-4.txt"),
	}} {
		checkNoise(t, sets)
	}
}

func checkNoise(t *testing.T, sets []string) {
	maxSignificant, maxTiming := 0.0, 0.0
	for i := range sets {
		for j := i + 1; j < len(sets); j++ {
			if code, out := runGate(t, sets[i], sets[j]); code != 0 {
				t.Errorf("gate %s %s: exit %d, want 0\n%s", sets[i], sets[j], code, out)
			}
			rep := compareFiles(t, sets[i], sets[j], defaults)
			for _, row := range rep.Rows {
				d := math.Abs(row.Delta)
				if math.IsNaN(d) {
					continue
				}
				if row.Comparison.P <= defaults.Alpha {
					maxSignificant = max(maxSignificant, d)
				}
				if row.Unit == "sec/op" || row.Unit == "B/s" {
					maxTiming = max(maxTiming, d)
				}
			}
		}
	}
	t.Logf("%s: largest significant change %.1f%%, largest time or rate change %.1f%%",
		filepath.Dir(sets[0]), maxSignificant*100, maxTiming*100)
	if maxSignificant >= defaultThreshold {
		t.Errorf("unchanged reruns show a significant change of %.1f%%, at or above the default threshold %.0f%%",
			maxSignificant*100, defaultThreshold*100)
	}
}

// The harness's own reruns on the tiny model, one iteration per sample
// (record.sh bench): 54 time, rate and peak-RSS rows per comparison, so
// some reach p <= 0.05 by chance.
var benchReruns = []string{
	fixture("bench-tiny-1x/rerun-1.txt"), fixture("bench-tiny-1x/rerun-2.txt"),
	fixture("bench-tiny-1x/rerun-3.txt"), fixture("bench-tiny-1x/rerun-4.txt"),
}

func TestHolmPassesNoisyReruns(t *testing.T) {
	plainFailures := 0
	for i := range benchReruns {
		for j := i + 1; j < len(benchReruns); j++ {
			if code, _ := runGate(t, benchReruns[i], benchReruns[j]); code != 0 {
				plainFailures++
			}
			if code, out := runGate(t, "-holm", benchReruns[i], benchReruns[j]); code != 0 {
				t.Errorf("gate -holm %s %s: exit %d, want 0\n%s", benchReruns[i], benchReruns[j], code, out)
			}
		}
	}
	// Without the correction, chance regressions fail some pairings of
	// unchanged code; this is what -holm is for.
	if plainFailures == 0 {
		t.Errorf("every pairing passes without -holm; the fixture no longer shows chance regressions")
	}
}

func TestHolmStillCatchesClearRegression(t *testing.T) {
	var oldLines, newLines []string
	for i := range 20 {
		name := fmt.Sprintf("BenchmarkSave/format=f%d/model=tiny_llama-2", i)
		oldLines = append(oldLines, repeat(name, "ns/op", 100, 101, 102, 103, 104, 105, 106, 107, 108, 109)...)
		factor := 1.0
		if i == 7 {
			factor = 1.3
		}
		newLines = append(newLines, repeat(name, "ns/op", 100*factor, 101*factor, 102*factor, 103*factor, 104*factor,
			105*factor, 106*factor, 107*factor, 108*factor, 109*factor)...)
	}
	oldPath := writeResults(t, "old.txt", oldLines...)
	newPath := writeResults(t, "new.txt", newLines...)
	rep := compareFiles(t, oldPath, newPath, Options{Threshold: defaultThreshold, Alpha: 0.05, Holm: true})
	row := findRow(t, rep, "Save/format=f7/model=tiny_llama", "sec/op")
	if row.Verdict != Regression {
		t.Errorf("30%% slowdown among 20 rows under -holm: verdict %v (p %.3g, level %.3g), want %v",
			row.Verdict, row.Comparison.P, row.Level, Regression)
	}
	if want := 0.05 / 20; math.Abs(row.Level-want) > 1e-12 {
		t.Errorf("smallest p held to level %g, want alpha/20 = %g", row.Level, want)
	}
	if rep.Pass() {
		t.Error("gate -holm passes a clear 30% slowdown")
	}
}

func TestGrowthFromZeroFails(t *testing.T) {
	name := "BenchmarkSave/format=zarr/model=tiny_llama-2"
	oldPath := writeResults(t, "old.txt", repeat(name, "disk-B", 0, 0, 0, 0, 0)...)
	newPath := writeResults(t, "new.txt", repeat(name, "disk-B", 10, 10, 10, 10, 10)...)
	rep := compareFiles(t, oldPath, newPath, defaults)
	if row := findRow(t, rep, "Save/format=zarr/model=tiny_llama", "disk-B"); row.Verdict != Regression {
		t.Errorf("disk-B from 0 to 10: verdict %v, want %v", row.Verdict, Regression)
	}
}
