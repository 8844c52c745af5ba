package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"golang.org/x/perf/benchmath"
	"golang.org/x/perf/benchunit"
)

// Print writes the verdict table, then the problems, warnings and the
// overall verdict.
func (r *Report) Print(w io.Writer) error {
	fmt.Fprintf(w, "old: %s\nnew: %s\n", r.OldPath, r.NewPath)
	level := fmt.Sprint(r.Options.Alpha)
	if r.Options.Holm {
		level += " (Holm-Bonferroni over the rows)"
	}
	fmt.Fprintf(w, "rule: fail when p <= %s and the median moved the bad way by more than %.0f%%\n\n",
		level, r.Options.Threshold*100)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\tunit\told\tnew\tdelta\tp\tverdict")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			row.Name, row.Unit,
			formatSummary(row.OldSummary, row.Old, row.Unit),
			formatSummary(row.NewSummary, row.New, row.Unit),
			formatDelta(row.Delta), formatP(row), row.Verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	var failing []string
	for _, row := range r.Rows {
		if r.fails(row) {
			failing = append(failing, fmt.Sprintf("%s (%s): %s: %s", row.Name, row.Unit, row.Verdict, row.Note))
		}
	}
	if len(failing) > 0 || len(r.Problems) > 0 {
		fmt.Fprintln(w, "\nfailures:")
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
		for _, f := range failing {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintln(w, "\nwarnings:")
		for _, warning := range r.Warnings {
			fmt.Fprintf(w, "  %s\n", warning)
		}
	}

	compared := 0
	for _, row := range r.Rows {
		if row.Old != nil && row.New != nil {
			compared++
		}
	}
	verdict := "PASS"
	if !r.Pass() {
		verdict = "FAIL"
	}
	_, err := fmt.Fprintf(w, "\ngate: %s: %d rows compared, %d failing\n", verdict, compared, len(failing)+len(r.Problems))
	return err
}

// formatSummary formats a median with its 95% confidence interval the
// way benchstat does ("32.63m ± 2%"), with the sample count.
func formatSummary(s *benchmath.Summary, sample *benchmath.Sample, unit string) string {
	if s == nil {
		return "-"
	}
	value := benchunit.Scale(s.Center, benchunit.ClassOf(unit))
	return fmt.Sprintf("%s ± %s n=%d", value, s.PctRangeString(), len(sample.Values))
}

func formatDelta(d float64) string {
	if math.IsNaN(d) {
		return "-"
	}
	return fmt.Sprintf("%+.1f%%", d*100)
}

func formatP(row Row) string {
	if row.Old == nil || row.New == nil {
		return "-"
	}
	s := fmt.Sprintf("%.3f", row.Comparison.P)
	if len(row.Comparison.Warnings) > 0 {
		var ws []string
		for _, w := range row.Comparison.Warnings {
			ws = append(ws, w.Error())
		}
		s += " (" + strings.Join(ws, "; ") + ")"
	}
	return s
}
