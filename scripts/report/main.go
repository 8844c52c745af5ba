// Command report turns the raw results of one `make bench` run into
// comparison.md and its charts.
//
// Usage:
//
//	go run ./scripts/report -results results/<run-id> -out . [-real results/<hf-run-id>]
//
// It reads every *.txt file of the results directory (Go benchmark
// format: BenchmarkSave/format=<f>[/codec=<c>]/model=<m> and
// BenchmarkLoad/.../cache=cold|warm, with the disk reference as
// format=disk/streams=<n>), groups the measurements with
// golang.org/x/perf/benchproc and summarizes them with benchmath (medians
// and 95% confidence intervals, as benchstat). It writes <out>/comparison.md
// and PNG charts into <results>/charts, so each run's charts stay beside
// the raw results they were drawn from; comparison.md links them by
// relative paths.
//
// With -real, a second results directory whose `weights:` line names a
// trained checkpoint ("pretrained, from <dir>", as the harness writes
// with BENCH_MODEL_DIR set, or "hf <dir>") adds a section comparing each
// codec's compression ratio on synthetic and real weights.
//
// The Targets section checks the T5X-style approach (format=t5x) against
// its goals: shares of the disk limit, speed ratios over zarr, the
// Python TensorStore peers and torchsave, and peak memory within the
// tensor bytes plus the `t5x-byte-budget` configuration line. Under each
// missed target it shows the top of the matching CPU profile that
// scripts/profile.sh wrote into <results>/profiles, or the command that
// records one. A <results>/NOTES.md is included verbatim as "Run notes".
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	flags := flag.NewFlagSet("report", flag.ContinueOnError)
	flags.SetOutput(stderr)
	resultsDir := flags.String("results", "", "directory of one run's raw results (`results/<run-id>`), required")
	outDir := flags.String("out", ".", "directory to write comparison.md into")
	chartDir := flags.String("charts", "", "directory for the PNG charts (default <results>/charts)")
	realDir := flags.String("real", "", "optional results directory of a run on real weights (`weights: pretrained, from ...`) for the compression section")
	model := flags.String("model", "", "model= value to report when a run holds several models")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if *resultsDir == "" || flags.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: report -results results/<run-id> [-out .] [-charts DIR] [-real results/<hf-run-id>] [-model NAME]")
		return 2
	}
	if *chartDir == "" {
		*chartDir = filepath.Join(*resultsDir, "charts")
	}
	if err := generate(*resultsDir, *outDir, *chartDir, *realDir, *model); err != nil {
		fmt.Fprintf(stderr, "report: %v\n", err)
		return 1
	}
	return 0
}

// generate reads the runs, draws the charts and writes comparison.md.
func generate(resultsDir, outDir, chartDir, realDir, model string) error {
	runResult, err := LoadRun(resultsDir, model)
	if err != nil {
		return err
	}
	rep := &Report{ResultsDir: resultsDir, Run: runResult}
	if rep.Profiles, err = LoadProfiles(resultsDir); err != nil {
		return err
	}
	if rep.Notes, err = readNotes(resultsDir); err != nil {
		return err
	}
	if realDir != "" {
		// The real weights may be another model's: a machine without the
		// benchmarked model's weights can still show how the codecs fare
		// on trained values. The section names both models.
		realRun, err := LoadRun(realDir, runResult.Model)
		if err != nil {
			realRun, err = LoadRun(realDir, "")
		}
		if err != nil {
			return err
		}
		if realRun.WeightsKind() != weightsReal {
			return fmt.Errorf("-real %s: its weights line is %q, not real weights (\"pretrained, from <dir>\"); pass a run made with BENCH_MODEL_DIR set",
				realDir, realRun.ConfigValue("weights"))
		}
		rep.Real = realRun
	}

	if err := os.MkdirAll(chartDir, 0o755); err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	rep.Charts, err = WriteCharts(runResult, chartDir)
	if err != nil {
		return err
	}
	rel, err := relativePath(outDir, chartDir)
	if err != nil {
		return err
	}
	rep.ChartDir = rel

	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, rep); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(outDir, "comparison.md"), buf.Bytes(), 0o644)
}

// notesFile is the optional file of a results directory whose text the
// report includes verbatim under "Run notes".
const notesFile = "NOTES.md"

// readNotes returns <resultsDir>/NOTES.md, or "" when it does not exist.
func readNotes(resultsDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(resultsDir, notesFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// relativePath returns target relative to base with forward slashes,
// as Markdown links need.
func relativePath(base, target string) (string, error) {
	absBase, err := filepath.Abs(base)
	if err != nil {
		return "", err
	}
	absTarget, err := filepath.Abs(target)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(absBase, absTarget)
	if err != nil {
		return "", fmt.Errorf("charts directory %s cannot be linked from %s: %w", target, base, err)
	}
	return filepath.ToSlash(rel), nil
}
