package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"golang.org/x/perf/benchmath"
)

// writeAnalysis writes findings computed from the numbers: the fastest
// and slowest approach of each operation, how they compare with
// torchsave, which fall below belowLimitFraction of the disk limit, the
// smallest checkpoint and the largest peak memory. Nothing in it is
// written by hand.
func writeAnalysis(w io.Writer, rep *Report) {
	run := rep.Run
	fmt.Fprintf(w, "## Findings\n\n")
	for _, op := range allOps {
		for _, line := range opFindings(run, op) {
			fmt.Fprintf(w, "- %s\n", line)
		}
	}
	for _, line := range sizeFindings(rep) {
		fmt.Fprintf(w, "- %s\n", line)
	}
	if line := memoryFinding(run); line != "" {
		fmt.Fprintf(w, "- %s\n", line)
	}
	fmt.Fprintln(w)
}

// ranked returns the run's non-reference cells of op that have a time,
// fastest first.
func ranked(run *Run, op Op) []*Cell {
	var cells []*Cell
	for _, v := range run.variantsWith(op) {
		c := run.Cell(v, op)
		if !v.IsDisk() && c.Stat(unitTime) != nil {
			cells = append(cells, c)
		}
	}
	sort.SliceStable(cells, func(i, j int) bool {
		return cells[i].Stat(unitTime).Median() < cells[j].Stat(unitTime).Median()
	})
	return cells
}

func opFindings(run *Run, op Op) []string {
	cells := ranked(run, op)
	if len(cells) == 0 {
		return nil
	}
	limit := run.Limit(op)
	base := run.Cell(baseline, op)
	var lines []string

	fastest := cells[0]
	line := fmt.Sprintf("**%s**: %s is fastest, %s (%s", capitalize(op.String()), fastest.Variant,
		formatSeconds(fastest.Stat(unitTime).Median()), formatRate(fastest.Stat(unitRate).Median()))
	if f, ok := FractionOfLimit(fastest, limit); ok {
		line += ", " + formatPercent(f) + " of the disk limit"
	}
	line += ")"
	if base != nil && fastest != base {
		if s, ok := SpeedupOver(fastest, base); ok {
			line += fmt.Sprintf(", %s torchsave's speed", formatTimes(s))
		}
	}
	if len(cells) > 1 {
		line += "; " + runnerUpText(fastest, cells[1])
	}
	lines = append(lines, line+".")

	if len(cells) > 1 {
		slowest := cells[len(cells)-1]
		line := fmt.Sprintf("Slowest %s: %s, %s", op, slowest.Variant, formatSeconds(slowest.Stat(unitTime).Median()))
		line += fmt.Sprintf(", %s the fastest's time", formatTimes(slowest.Stat(unitTime).Median()/fastest.Stat(unitTime).Median()))
		lines = append(lines, line+".")
	}

	if limit.Best == nil {
		lines = append(lines, fmt.Sprintf("No disk reference for the %s, so no approach is measured against a limit.", op))
		return lines
	}
	var below, above []share
	for _, c := range cells {
		f, ok := FractionOfLimit(c, limit)
		switch {
		case ok && f < belowLimitFraction:
			below = append(below, share{c.Variant, f})
		case ok && f > aboveLimitFraction:
			above = append(above, share{c.Variant, f})
		}
	}
	if len(above) > 0 {
		lines = append(lines, fmt.Sprintf("Faster than the disk reference's %s: %s, so the reference is no upper bound for this operation in this run.",
			op, sharesText(above)))
	}
	if len(below) == 0 {
		lines = append(lines, fmt.Sprintf("Every %s reaches %s of the disk limit (%s) or more.",
			op, formatPercent(belowLimitFraction), formatRate(limit.Rate())))
	} else {
		lines = append(lines, fmt.Sprintf("Below %s of the %s limit (%s, %s): %s.",
			formatPercent(belowLimitFraction), op, formatRate(limit.Rate()), limit.Best.Variant, sharesText(below)))
	}
	return lines
}

// share is an approach's throughput as a fraction of the disk limit.
type share struct {
	variant  Variant
	fraction float64
}

// sharesText lists shares from the largest fraction down: "zarr/raw 60%, torchsave 23%".
func sharesText(shares []share) string {
	sort.SliceStable(shares, func(i, j int) bool { return shares[i].fraction > shares[j].fraction })
	var parts []string
	for _, s := range shares {
		parts = append(parts, fmt.Sprintf("%s %s", s.variant, formatPercent(s.fraction)))
	}
	return strings.Join(parts, ", ")
}

// runnerUpText describes how the fastest compares with the second, using the
// Mann-Whitney U test on their times as benchstat would.
func runnerUpText(fastest, second *Cell) string {
	a, b := fastest.Stat(unitTime), second.Stat(unitTime)
	cmp := benchmath.AssumeNothing.Compare(a.Sample, b.Sample)
	if cmp.P > cmp.Alpha && len(cmp.Warnings) > 0 {
		// benchmath warns when the samples are too small for any p to
		// reach alpha.
		return fmt.Sprintf("too few runs to tell it from the runner-up %s (%s)", second.Variant, cmp)
	}
	if cmp.P > cmp.Alpha {
		return fmt.Sprintf("the runner-up %s is not distinguishable from it (%s)", second.Variant, cmp)
	}
	ratio := b.Median() / a.Median()
	if ratio >= 2 {
		return fmt.Sprintf("the runner-up %s takes %s as long (%s)", second.Variant, formatTimes(ratio), cmp)
	}
	return fmt.Sprintf("%s ahead of the runner-up %s (%s)", formatPercent(ratio-1), second.Variant, cmp)
}

func sizeFindings(rep *Report) []string {
	run := rep.Run
	var best *Cell
	bestRatio := 0.0
	for _, v := range run.Variants {
		c := run.firstCell(v, allOps...)
		if r, ok := CompressionRatio(c); ok && !v.IsDisk() && r > bestRatio {
			best, bestRatio = c, r
		}
	}
	if best == nil {
		return nil
	}
	var lines []string
	line := fmt.Sprintf("Smallest checkpoint: %s, %s on disk, compression ratio %.3f (%s smaller than the tensors) on %s",
		best.Variant, formatBytes(best.Stat(unitDisk).Median()), bestRatio, formatPercent(1-1/bestRatio), run.weightsShort())
	lines = append(lines, line+".")
	if rep.Real == nil {
		return lines
	}
	if realCell := rep.Real.firstCell(best.Variant, allOps...); realCell != nil {
		if r, ok := CompressionRatio(realCell); ok {
			lines = append(lines, fmt.Sprintf("On real weights %s reaches a ratio of %.3f, against %.3f on %s.",
				best.Variant, r, bestRatio, run.weightsShort()))
		}
	}
	return lines
}

// cellLess orders cells by variant, then operation, so ties between cells
// resolve the same way whatever the map's iteration order.
func cellLess(a, b *Cell) bool {
	if variantLess(a.Variant, b.Variant) {
		return true
	}
	if variantLess(b.Variant, a.Variant) {
		return false
	}
	return fmt.Sprint(a.Op) < fmt.Sprint(b.Op)
}

func memoryFinding(run *Run) string {
	var worst *Cell
	for _, c := range run.Cells {
		if c.Variant.IsDisk() || c.Stat(unitRSS) == nil {
			continue
		}
		if worst == nil || c.Stat(unitRSS).Median() > worst.Stat(unitRSS).Median() ||
			(c.Stat(unitRSS).Median() == worst.Stat(unitRSS).Median() && cellLess(c, worst)) {
			worst = c
		}
	}
	if worst == nil {
		return ""
	}
	line := fmt.Sprintf("Largest peak memory: %s during its %s, %s", worst.Variant, worst.Op, formatBytes(worst.Stat(unitRSS).Median()))
	if tb := run.TensorBytes(); tb > 0 {
		line += fmt.Sprintf(", %.2f× the tensor bytes", worst.Stat(unitRSS).Median()/tb)
	}
	return line + "."
}
