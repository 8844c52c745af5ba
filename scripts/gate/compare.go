package main

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"
)

// Options sets how strict the gate is.
type Options struct {
	// Threshold is the relative change of medians (0.10 = 10%) that a
	// significant change in the bad direction must exceed to fail.
	Threshold float64
	// Alpha is the significance level of the Mann-Whitney U test.
	Alpha float64
	// AllowMissing lets rows of the old set be absent from the new one.
	AllowMissing bool
	// Holm applies the Holm-Bonferroni correction over the compared rows,
	// so that alpha bounds the chance of any false regression in the
	// whole comparison rather than in each row.
	Holm bool
}

// Verdict is the gate's judgement of one row.
type Verdict int

const (
	Same          Verdict = iota // no significant change
	Better                       // significant change in the good direction
	WorseWithin                  // significant change in the bad direction, within the threshold
	Regression                   // significant change in the bad direction, beyond the threshold
	Changed                      // significant change of a unit whose good direction is unknown
	TooFewSamples                // the U test cannot reach p <= alpha with these sample sizes
	MissingInNew                 // the row is in the old set only
	OnlyInNew                    // the row is in the new set only
)

func (v Verdict) String() string {
	switch v {
	case Same:
		return "ok"
	case Better:
		return "better"
	case WorseWithin:
		return "worse, within threshold"
	case Regression:
		return "REGRESSION"
	case Changed:
		return "changed (direction unknown)"
	case TooFewSamples:
		return "TOO FEW SAMPLES"
	case MissingInNew:
		return "MISSING in new"
	case OnlyInNew:
		return "only in new"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Row is the comparison of one benchmark name and unit.
type Row struct {
	RowKey
	Old, New *benchmath.Sample
	// OldSummary and NewSummary are the medians with 95% confidence
	// intervals (nil for a side that lacks the row).
	OldSummary, NewSummary *benchmath.Summary
	// Delta is (new - old) / old of the medians; NaN when undefined.
	Delta      float64
	Comparison benchmath.Comparison
	// Level is the significance level the row's p was held to: alpha, or
	// less under the Holm-Bonferroni correction.
	Level float64
	// Significant reports whether p <= Level.
	Significant bool
	// Better is +1 when higher values are better, -1 when lower ones
	// are, 0 when unknown.
	Better  int
	Verdict Verdict
	// Note explains a failing verdict.
	Note string
}

// Report is the outcome of comparing two sets.
type Report struct {
	OldPath, NewPath string
	Options          Options
	Rows             []Row
	// Problems are reasons to fail that belong to no row.
	Problems []string
	// Warnings are worth reading but do not fail the gate.
	Warnings []string
}

// Pass reports whether the gate passes.
func (r *Report) Pass() bool {
	if len(r.Problems) > 0 {
		return false
	}
	for _, row := range r.Rows {
		if r.fails(row) {
			return false
		}
	}
	return true
}

func (r *Report) fails(row Row) bool {
	switch row.Verdict {
	case Regression, TooFewSamples:
		return true
	case MissingInNew:
		return !r.Options.AllowMissing
	}
	return false
}

// Compare judges every row of the two sets.
func Compare(oldSet, newSet *Set, opts Options) *Report {
	rep := &Report{OldPath: oldSet.Path, NewPath: newSet.Path, Options: opts}
	thresholds := &benchmath.Thresholds{CompareAlpha: opts.Alpha}
	units := mergeUnits(oldSet.Units, newSet.Units)

	compared := 0
	for _, key := range oldSet.Rows {
		row := Row{RowKey: key, Delta: math.NaN(), Better: betterDirection(units, key.Unit)}
		row.Old = benchmath.NewSample(slices.Clone(oldSet.Samples[key]), thresholds)
		assumption := units.GetAssumption(key.Unit)
		oldSummary := assumption.Summary(row.Old, 0.95)
		row.OldSummary = &oldSummary
		newValues, ok := newSet.Samples[key]
		if !ok {
			row.Verdict = MissingInNew
			row.Note = fmt.Sprintf("%s has no %s measurement of this benchmark", newSet.Path, key.Unit)
			rep.Rows = append(rep.Rows, row)
			continue
		}
		compared++
		row.New = benchmath.NewSample(slices.Clone(newValues), thresholds)
		newSummary := assumption.Summary(row.New, 0.95)
		row.NewSummary = &newSummary
		row.Comparison = assumption.Compare(row.Old, row.New)
		row.Delta = relativeChange(row.OldSummary.Center, row.NewSummary.Center)
		rep.Rows = append(rep.Rows, row)
	}
	setLevels(rep.Rows, units, opts)
	for i := range rep.Rows {
		if rep.Rows[i].New != nil && rep.Rows[i].Old != nil {
			judge(&rep.Rows[i], units.GetAssumption(rep.Rows[i].Unit), opts)
		}
	}
	for _, key := range newSet.Rows {
		if _, ok := oldSet.Samples[key]; ok {
			continue
		}
		row := Row{RowKey: key, Delta: math.NaN(), Better: betterDirection(units, key.Unit), Verdict: OnlyInNew}
		row.New = benchmath.NewSample(slices.Clone(newSet.Samples[key]), thresholds)
		s := units.GetAssumption(key.Unit).Summary(row.New, 0.95)
		row.NewSummary = &s
		rep.Rows = append(rep.Rows, row)
	}

	if len(oldSet.Rows) == 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s has no benchmark results", oldSet.Path))
	}
	if len(newSet.Rows) == 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s has no benchmark results", newSet.Path))
	}
	if compared == 0 && len(oldSet.Rows) > 0 && len(newSet.Rows) > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf(
			"no benchmark is in both %s and %s: they were run with different benchmarks, formats or models",
			oldSet.Path, newSet.Path))
	}
	rep.Warnings = append(rep.Warnings, configWarnings(oldSet, newSet)...)
	return rep
}

// judge sets row's verdict from its comparison and the significance that
// setLevels decided.
func judge(row *Row, assumption benchmath.Assumption, opts Options) {
	p := row.Comparison.P
	if !row.Significant || row.Delta == 0 {
		row.Verdict = Same
		if minP := minimumP(assumption, row.Old.Thresholds, row.Old.Values, row.New.Values); minP > opts.Alpha {
			row.Verdict = TooFewSamples
			row.Note = fmt.Sprintf("with %d+%d samples the U test cannot give p <= %v (the smallest possible p is %.3g); run more, 10 or more per side is advised",
				len(row.Old.Values), len(row.New.Values), opts.Alpha, minP)
		}
		return
	}
	// The sign of the difference, not Delta, which is NaN when the old
	// median is 0.
	change := row.NewSummary.Center - row.OldSummary.Center
	worse := row.Better != 0 && float64(row.Better)*change < 0
	switch {
	case row.Better == 0:
		row.Verdict = Changed
	case !worse:
		row.Verdict = Better
	case math.IsNaN(row.Delta) || math.Abs(row.Delta) > opts.Threshold:
		row.Verdict = Regression
		row.Note = fmt.Sprintf("%s changed by %s, beyond the %.0f%% threshold, with p=%.3g <= %.3g",
			row.Unit, formatDelta(row.Delta), opts.Threshold*100, p, row.Level)
	default:
		row.Verdict = WorseWithin
	}
}

// setLevels sets each compared row's significance level and whether its
// p meets it. Without opts.Holm every row is held to alpha, as benchstat
// does. With it, the rows that are real tests (not exact units, not two
// identical constant samples) are sorted by p, and the k-th smallest of m
// must be at most alpha/(m-k+1), stopping at the first that is not.
func setLevels(rows []Row, units benchfmt.UnitMetadataMap, opts Options) {
	var family []*Row
	for i := range rows {
		row := &rows[i]
		if row.Old == nil || row.New == nil {
			continue
		}
		row.Level = opts.Alpha
		row.Significant = row.Comparison.P <= opts.Alpha
		if units.GetAssumption(row.Unit) != benchmath.AssumeExact && !constantAndEqual(row.Old.Values, row.New.Values) {
			family = append(family, row)
		}
	}
	if !opts.Holm {
		return
	}
	sort.SliceStable(family, func(i, j int) bool { return family[i].Comparison.P < family[j].Comparison.P })
	stopped := false
	for k, row := range family {
		row.Level = opts.Alpha / float64(len(family)-k)
		stopped = stopped || row.Comparison.P > row.Level
		row.Significant = !stopped
	}
}

// constantAndEqual reports whether both samples contain one and the same
// value, as disk-B and files usually do: no test can find a change there.
func constantAndEqual(a, b []float64) bool {
	for _, v := range append(slices.Clone(a), b...) {
		if v != a[0] {
			return false
		}
	}
	return true
}

// minimumP returns the smallest p the assumption's test can give for
// samples of these sizes: the p of two samples that do not overlap at
// all. benchmath's comparison warns when more samples are needed, but
// only for rows whose p is above alpha. This computes the same limit for
// every row, including rows whose samples tie.
func minimumP(assumption benchmath.Assumption, t *benchmath.Thresholds, oldValues, newValues []float64) float64 {
	low := make([]float64, len(oldValues))
	high := make([]float64, len(newValues))
	for i := range low {
		low[i] = float64(i)
	}
	for i := range high {
		high[i] = float64(len(low) + i)
	}
	return assumption.Compare(benchmath.NewSample(low, t), benchmath.NewSample(high, t)).P
}

// relativeChange returns (new - old) / old, or NaN when old is 0 and
// new is not.
func relativeChange(old, new float64) float64 {
	if old == new {
		return 0
	}
	if old == 0 {
		return math.NaN()
	}
	return (new - old) / old
}

// betterDirection returns +1 when higher values of unit are better, -1
// when lower ones are and 0 when unknown. Unit metadata lines take
// precedence, then benchfmt's defaults for the testing package's units.
// Any other unit counting bytes (disk-B, peak-RSS-B) is lower-is-better,
// and any rate (.../s) is higher-is-better.
func betterDirection(units benchfmt.UnitMetadataMap, unit string) int {
	if b := units.GetBetter(unit); b != 0 {
		return b
	}
	switch {
	case unit == "B" || strings.HasSuffix(unit, "-B"):
		return -1
	case strings.HasSuffix(unit, "/s"):
		return 1
	}
	return 0
}

func mergeUnits(a, b benchfmt.UnitMetadataMap) benchfmt.UnitMetadataMap {
	m := make(benchfmt.UnitMetadataMap, len(a)+len(b))
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	return m
}

// configWarnings names the file configuration keys and GOMAXPROCS values
// that differ between the sets: the rows are still compared, but a
// difference in cpu or weights makes the comparison doubtful.
func configWarnings(oldSet, newSet *Set) []string {
	var warnings []string
	var keys []string
	for k := range oldSet.Config {
		keys = append(keys, k)
	}
	for k := range newSet.Config {
		if _, ok := oldSet.Config[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		o, n := slices.Clone(oldSet.Config[k]), slices.Clone(newSet.Config[k])
		slices.Sort(o)
		slices.Sort(n)
		if !slices.Equal(o, n) {
			warnings = append(warnings, fmt.Sprintf("configuration %q differs: old %q, new %q", k, o, n))
		}
	}
	if !slices.Equal(oldSet.Procs, newSet.Procs) {
		warnings = append(warnings, fmt.Sprintf("GOMAXPROCS differs: old %q, new %q; rows were compared across it", oldSet.Procs, newSet.Procs))
	}
	return warnings
}
