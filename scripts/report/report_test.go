package main

import (
	"bytes"
	"flag"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/comparison.golden.md from the fixture")

// The fixtures are hand-made result sets in the harness's shape; see
// testdata/results/make_report_fixtures.py.
var (
	syntheticRun = filepath.Join("..", "..", "testdata", "results", "report-synthetic")
	realRun      = filepath.Join("..", "..", "testdata", "results", "report-real")
)

// TestGolden regenerates comparison.md from the fixtures and compares it
// with the golden file. Run `go test ./scripts/report -update` after an
// intended change and review the diff.
func TestGolden(t *testing.T) {
	out := t.TempDir()
	charts := filepath.Join(out, "charts")
	if code := run([]string{"-results", syntheticRun, "-real", realRun, "-out", out, "-charts", charts}, os.Stderr); code != 0 {
		t.Fatalf("report exited %d", code)
	}
	got, err := os.ReadFile(filepath.Join(out, "comparison.md"))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "comparison.golden.md")
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

	// Every chart the markdown links exists and is a PNG.
	for _, c := range []Chart{chartSave, chartCold, chartWarm, chartSize, chartThroughput} {
		link := "(charts/" + c.Name + ")"
		if !strings.Contains(string(got), link) {
			t.Errorf("comparison.md does not link %s", link)
		}
		f, err := os.Open(filepath.Join(charts, c.Name))
		if err != nil {
			t.Error(err)
			continue
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		if b := img.Bounds(); b.Dx() != chartWidth || b.Dy() < 200 {
			t.Errorf("%s is %dx%d, want %d wide and at least 200 high", c.Name, b.Dx(), b.Dy(), chartWidth)
		}
	}
}

// lineDiff returns the first differing lines of two texts.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return "line " + strconv.Itoa(i+1) + ":\n-" + a + "\n+" + b
		}
	}
	return ""
}

func TestDefaultChartDirIsBesideResults(t *testing.T) {
	results := t.TempDir()
	copyDir(t, syntheticRun, results)
	out := t.TempDir()
	if code := run([]string{"-results", results, "-out", out}, os.Stderr); code != 0 {
		t.Fatalf("report exited %d", code)
	}
	if _, err := os.Stat(filepath.Join(results, "charts", chartSave.Name)); err != nil {
		t.Errorf("chart not written beside the results: %v", err)
	}
	md, err := os.ReadFile(filepath.Join(out, "comparison.md"))
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(out, filepath.Join(results, "charts", chartSave.Name))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "("+filepath.ToSlash(rel)+")") {
		t.Errorf("comparison.md does not link the chart by the relative path %s", rel)
	}
}

func TestRealRunMustHaveRealWeights(t *testing.T) {
	out := t.TempDir()
	var stderr bytes.Buffer
	code := run([]string{"-results", syntheticRun, "-real", syntheticRun, "-out", out, "-charts", filepath.Join(out, "c")}, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "not real weights") {
		t.Errorf("error does not explain the weights: %s", stderr.String())
	}
}

func TestInvalidCommandLine(t *testing.T) {
	for _, args := range [][]string{{}, {"-out", "."}, {"-results", syntheticRun, "extra"}} {
		if code := run(args, &bytes.Buffer{}); code != 2 {
			t.Errorf("report %q: exit %d, want 2", args, code)
		}
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(from, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, filepath.Base(f)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
