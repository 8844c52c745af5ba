package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

var statusText = map[targetStatus]string{notMeasured: "not measured", met: "met", missed: "**missed**"}

// writeTargets writes the Targets section: each t5x codec's targets with
// their status, and under each operation with a missed target, the top
// of the matching CPU profile or the command that records one.
func writeTargets(w io.Writer, rep *Report) {
	run := rep.Run
	budget := runByteBudget(run)
	sets := Targets(run, budget)
	fmt.Fprintf(w, "## Targets\n\n")
	fmt.Fprintf(w, "Goals for the T5X-style approach (`format=%s`), for each codec, checked against this run's medians:\n\n", targetFormat)
	fmt.Fprintf(w, "- the durable save and the cold load each reach %s of the disk limit (the better of `format=disk` with 1 stream and with 16 in flight);\n",
		formatPercent(targetLimitFraction))
	fmt.Fprintf(w, "- the save, cold load and warm load are each at least %s as fast as zarr with the same codec and as the Python TensorStore peers (py-tensorstore, py-t5x), and no slower than torchsave;\n",
		formatTimes(targetPeerSpeedup))
	fmt.Fprintf(w, "- peak RSS during the save is at most the tensor bytes (%s) plus t5x's byte budget (%s).\n\n",
		formatBytes(run.TensorBytes()), budgetText(budget))
	fmt.Fprintf(w, "A speed ratio is the other approach's median time divided by t5x's; the operation tables below give each median's confidence interval. The harness writes the Python peers and torchsave without a codec, so every t5x codec is compared with the same figures of theirs. A target is not measured when either side is missing from the run.\n\n")

	fmt.Fprintf(w, "| approach | met | missed | not measured |\n|---|--:|--:|--:|\n")
	for _, set := range sets {
		fmt.Fprintf(w, "| %s | %d | %d | %d |\n", set.Variant, set.Count(met), set.Count(missed), set.Count(notMeasured))
	}
	fmt.Fprintln(w)

	for _, set := range sets {
		writeTargetTable(w, run, set)
		for _, op := range allOps {
			writeMissedOp(w, rep, set, op)
		}
	}
}

func budgetText(b byteBudget) string {
	if b.Bytes <= 0 {
		return "unknown: " + b.Source
	}
	return fmt.Sprintf("%s, %s", formatBytes(b.Bytes), b.Source)
}

func writeTargetTable(w io.Writer, run *Run, set TargetSet) {
	fmt.Fprintf(w, "### %s\n\n", set.Variant)
	if run.firstCell(set.Variant, allOps...) == nil {
		fmt.Fprintf(w, "No %s results in this run, so none of its %d targets is measured.\n\n", set.Variant, len(set.Targets))
		return
	}
	fmt.Fprintf(w, "| operation | compared with | goal | measured | result |\n|---|---|--:|--:|---|\n")
	for _, t := range set.Targets {
		measured := "-"
		result := statusText[t.Status]
		switch t.Status {
		case notMeasured:
			result += ": " + t.Reason
		case missed:
			result += ": " + t.Shortfall()
		}
		if t.Status != notMeasured {
			measured = targetValueText(t, t.Measured)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", t.Op, againstText(run, t), goalText(t), measured, result)
	}
	fmt.Fprintln(w)
}

func againstText(run *Run, t Target) string {
	switch t.Kind {
	case kindLimit:
		if t.Against == "" {
			return "disk limit"
		}
		return fmt.Sprintf("disk limit (%s, %s)", t.Against, formatRate(run.Limit(t.Op).Rate()))
	case kindMemory:
		return "tensor bytes + byte budget"
	}
	return t.Against
}

func goalText(t Target) string {
	switch t.Kind {
	case kindLimit:
		return "≥ " + formatPercent(t.Goal)
	case kindSpeedup:
		return "≥ " + formatTimes(t.Goal)
	case kindMemory:
		if t.Status == notMeasured && t.Goal <= 0 {
			return "-"
		}
		return "peak RSS ≤ " + formatBytes(t.Goal)
	}
	return ""
}

func targetValueText(t Target, v float64) string {
	switch t.Kind {
	case kindLimit:
		return formatPercent(v)
	case kindSpeedup:
		return formatTimes(v)
	}
	return formatBytes(v)
}

// writeMissedOp writes, when set has missed targets in op, which ones
// and where the operation's time goes.
func writeMissedOp(w io.Writer, rep *Report, set TargetSet, op Op) {
	var missedTimes, missedMemory []string
	for _, t := range set.Targets {
		if t.Op != op || t.Status != missed {
			continue
		}
		switch t.Kind {
		case kindMemory:
			missedMemory = append(missedMemory, fmt.Sprintf("peak RSS within %s (reached %s)", formatBytes(t.Goal), formatBytes(t.Measured)))
		case kindLimit:
			missedTimes = append(missedTimes, fmt.Sprintf("%s of the disk limit (reached %s)", formatPercent(t.Goal), formatPercent(t.Measured)))
		case kindSpeedup:
			missedTimes = append(missedTimes, fmt.Sprintf("%s %s's speed (reached %s)", formatTimes(t.Goal), t.Against, formatTimes(t.Measured)))
		}
	}
	if len(missedTimes) == 0 && len(missedMemory) == 0 {
		return
	}

	fmt.Fprintf(w, "#### %s %s: missed targets\n\n", set.Variant, op)
	fmt.Fprintf(w, "Missed targets: %s.", strings.Join(append(missedTimes, missedMemory...), ", "))
	if len(missedMemory) > 0 {
		fmt.Fprintf(w, " A CPU profile does not show memory, so it explains only the time targets.")
	}
	fmt.Fprintf(w, "\n\n")
	if len(missedTimes) == 0 {
		return
	}

	p := rep.Profiles[profileKey(set.Variant, op)]
	if p == nil {
		fmt.Fprintf(w, "No profile was recorded for the %s %s. Record one, then rerun the report:\n\n", set.Variant, op)
		fmt.Fprintf(w, "    RESULTS=%s FORMATS=%s OPS=%s scripts/profile.sh\n\n", rep.ResultsDir, set.Variant, profileOps[op])
		return
	}
	writeProfileTop(w, p)
}

// writeProfileTop writes a profile's provenance and its top functions.
func writeProfileTop(w io.Writer, p *Profile) {
	var facts []string
	if m := p.Header["model"]; m != "" {
		text := "model " + m
		if tb := p.Header["tensor-bytes"]; tb != "" {
			if n, err := strconv.ParseFloat(tb, 64); err == nil {
				text += " (" + formatBytes(n) + " of tensors)"
			}
		}
		facts = append(facts, text)
	}
	if n := p.Iterations(); n > 0 {
		facts = append(facts, fmt.Sprintf("%d timed runs, %s in all", n, formatSeconds(p.TimedSeconds())))
	}
	if p.Total != "" {
		facts = append(facts, p.Total+" of CPU samples")
	}
	// The average number of busy cores separates CPU-bound from
	// I/O-bound operations, but only when the samples come from the timed
	// region alone.
	if timed := p.TimedSeconds(); p.Header["timed-only"] == "yes" && timed > 0 && p.TotalSeconds > 0 {
		facts = append(facts, fmt.Sprintf("%.2f cores busy on average", p.TotalSeconds/timed))
	}

	fmt.Fprintf(w, "Where the time goes, from the CPU profile `%s`", p.Path)
	if len(facts) > 0 {
		fmt.Fprintf(w, ": %s", strings.Join(facts, ", "))
	}
	fmt.Fprintf(w, ".")
	if f := p.Header["filter"]; f != "" {
		fmt.Fprintf(w, " Samples kept: %s.", strings.TrimSuffix(f, "."))
	}
	fmt.Fprintf(w, "\n\n")

	if len(p.Rows) == 0 {
		fmt.Fprintf(w, "The profile has no samples.\n\n")
		return
	}
	fmt.Fprintf(w, "| flat | cum | function |\n|--:|--:|---|\n")
	for i, r := range p.Rows {
		if i == profileRows {
			break
		}
		fmt.Fprintf(w, "| %s | %s | `%s` |\n", r.FlatPct, r.CumPct, r.Function)
	}
	fmt.Fprintf(w, "\nflat is the share of the kept CPU samples in the function itself, cum the share with its callees.\n\n")
}
