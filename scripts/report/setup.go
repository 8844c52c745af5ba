package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// weightsKind is the source of the benchmarked weights, read from the
// `weights:` configuration line.
type weightsKind int

const (
	weightsUnknown   weightsKind = iota // no weights line, or an unknown value
	weightsSynthetic                    // "synthetic (seed N)"
	weightsReal                         // "pretrained, from <dir>" or "hf <dir>": a trained checkpoint
	weightsMixed                        // files disagree
)

// WeightsKind classifies the run's weights line.
func (r *Run) WeightsKind() weightsKind {
	values := r.Config["weights"]
	switch {
	case len(values) == 0:
		return weightsUnknown
	case len(values) > 1:
		return weightsMixed
	case strings.HasPrefix(values[0], "synthetic"):
		return weightsSynthetic
	case strings.HasPrefix(values[0], "pretrained") || strings.HasPrefix(values[0], "hf "):
		return weightsReal
	}
	return weightsUnknown
}

// writeWeightsBanner writes the prominent note on the weights' source.
func writeWeightsBanner(w io.Writer, run *Run) {
	weights := run.ConfigValue("weights")
	switch run.WeightsKind() {
	case weightsSynthetic:
		fmt.Fprintf(w, "> **Synthetic weights** (`weights: %s`). Every tensor was generated with the\n", weights)
		fmt.Fprintf(w, "> model's shapes and dtype, not read from the trained checkpoint. Times do not\n")
		fmt.Fprintf(w, "> depend on the values, but sizes on disk and compression ratios do.\n\n")
	case weightsReal:
		fmt.Fprintf(w, "> **Real weights** (`weights: %s`).\n\n", weights)
	case weightsMixed:
		fmt.Fprintf(w, "> **Mixed weights: the result files disagree on the weights' source.**\n")
		for _, v := range run.Config["weights"] {
			fmt.Fprintf(w, "> `weights: %s` in %s.\n", v, strings.Join(run.ConfigFiles["weights"][v], ", "))
		}
		fmt.Fprintf(w, "> Rows from different sources are not comparable; rerun them together.\n\n")
	default:
		fmt.Fprintf(w, "> **Weights of unknown source**: the result files have no recognised `weights:` line (%q).\n\n", weights)
	}
}

// writeSetup writes the machine, device, model and software table.
func writeSetup(w io.Writer, run *Run) {
	fmt.Fprintf(w, "## Setup\n\n| | |\n|---|---|\n")
	row := func(name, value string) {
		if value != "" {
			fmt.Fprintf(w, "| %s | %s |\n", name, value)
		}
	}
	row("CPU", orUnknown(run.ConfigValue("cpu")))
	row("cores", coresText(run))
	row("memory", memText(firstConfig(run, "mem-total", "mem")))
	row("disk", run.ConfigValue("disk-model"))
	row("disk bandwidth, measured in this run", diskText(run))
	row("device", orUnknown(run.ConfigValue("device")))
	model := run.ConfigValue("model")
	if model == "" {
		model = run.Model
	}
	row("model", fmt.Sprintf("%s (`model=%s`), %s, %s of tensors", model, run.Model,
		orUnknown(run.ConfigValue("dtype")), formatBytes(run.TensorBytes())))
	row("weights", orUnknown(run.ConfigValue("weights")))
	row("OS", strings.Trim(run.ConfigValue("goos")+"/"+run.ConfigValue("goarch"), "/"))
	var software []string
	for _, key := range []string{"python", "torch", "tensorstore", "safetensors", "numpy"} {
		if v := run.ConfigValue(key); v != "" {
			software = append(software, key+" "+v)
		}
	}
	row("Python peers", strings.Join(software, ", "))
	fmt.Fprintln(w)
}

// firstConfig returns the value of the first of keys the run has.
func firstConfig(run *Run, keys ...string) string {
	for _, k := range keys {
		if v := run.ConfigValue(k); v != "" {
			return v
		}
	}
	return ""
}

func orUnknown(s string) string {
	if s == "" {
		return "not recorded"
	}
	return s
}

// coresText returns the core count from a cores or ncpu line, else the
// GOMAXPROCS suffix of the benchmark names, which the harness leaves at
// the number of CPUs.
func coresText(run *Run) string {
	for _, key := range []string{"cores", "ncpu"} {
		if v := run.ConfigValue(key); v != "" {
			return v
		}
	}
	var procs []string
	for _, p := range run.Procs {
		if p != "" {
			procs = append(procs, p)
		}
	}
	if len(procs) == 0 {
		return "not recorded"
	}
	sort.Strings(procs)
	return strings.Join(procs, ", ") + " (GOMAXPROCS of the runs)"
}

// memText formats the mem line, which holds bytes.
func memText(mem string) string {
	if mem == "" {
		return "not recorded"
	}
	n, err := strconv.ParseFloat(mem, 64)
	if err != nil {
		return mem
	}
	return fmt.Sprintf("%s (%.1f GiB)", formatBytes(n), n/(1<<30))
}

// diskText lists the disk reference's median throughput per operation.
func diskText(run *Run) string {
	var parts []string
	for _, op := range allOps {
		l := run.Limit(op)
		var refs []string
		for _, ref := range l.Refs {
			refs = append(refs, fmt.Sprintf("%s with %s", formatRate(ref.Stat(unitRate).Median()), streamsText(ref.Variant)))
		}
		if len(refs) > 0 {
			parts = append(parts, diskOpName(op)+" "+strings.Join(refs, ", "))
		}
	}
	if len(parts) == 0 {
		return "not measured (no `format=disk` results)"
	}
	return strings.Join(parts, "; ")
}

func diskOpName(op Op) string {
	switch op {
	case opSave:
		return "write"
	case opCold:
		return "read"
	case opWarm:
		return "page-cache read"
	}
	return op.String()
}

func streamsText(v Variant) string {
	if v.Streams == "1" {
		return "1 stream"
	}
	return v.Streams + " in flight"
}

// TensorBytes returns the checkpoint's tensor bytes: the largest of the
// cells' (they agree up to the rounding of MB/s, or all come from the
// tensor-bytes configuration line).
func (r *Run) TensorBytes() float64 {
	n := 0.0
	for _, c := range r.Cells {
		n = max(n, c.TensorBytes)
	}
	return n
}

// writeMethod states how the numbers were measured.
func writeMethod(w io.Writer, run *Run) {
	fmt.Fprintf(w, "## Method\n\n")
	sync := run.ConfigValue("sync")
	if sync == "" {
		sync = "not recorded: the results have no `sync:` line"
	} else {
		sync = "`sync: " + sync + "`"
	}
	fmt.Fprintf(w, "The harness's rules, as bench/doc.go states them:\n\n")
	fmt.Fprintf(w, "- Save is durable: the format syncs its files inside the timed region. This run records %s.\n", sync)
	cache := run.ConfigValue("cache")
	if cache == "" {
		cache = "not recorded: the results have no `cache:` line"
	} else {
		cache = "`cache: " + cache + "`"
	}
	fmt.Fprintf(w, "- Cold load: before each timed load, the checkpoint's files are fsynced and evicted from the page cache with `posix_fadvise(POSIX_FADV_DONTNEED)`, outside the timed region. Warm load: with the checkpoint's files in the page cache, put there outside the timed region. A load ends when every byte is in memory. This run records %s.%s\n", cache, cacheCheck(run))
	fmt.Fprintf(w, "- Disk limit: the disk reference (`format=disk`, O_DIRECT) moves the same number of bytes with one stream and with 16 requests in flight; the better of the two is the limit of each operation. For warm loads the limit is the page-cache read.\n")
	fmt.Fprintf(w, "- Peak RSS is the process's peak resident memory during the operation (VmHWM, reset before each operation); it includes the model the harness holds.\n\n")
	fmt.Fprintf(w, "Each figure is the median of %s with its 95%% confidence interval, computed with golang.org/x/perf/benchmath as benchstat does (\"± ∞\" means too few runs for an interval). Throughput is tensor bytes divided by time.\n\n", runsText(run))
}

// runsText returns "6 runs" or "4 to 10 runs" over all cells.
func runsText(run *Run) string {
	lo, hi := 0, 0
	for _, c := range run.Cells {
		s := c.Stat(unitTime)
		if s == nil {
			continue
		}
		n := len(s.Sample.Values)
		if lo == 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
	}
	if lo == hi {
		return fmt.Sprintf("%d runs", lo)
	}
	return fmt.Sprintf("%d to %d runs (see n)", lo, hi)
}

// unitOffState is the bytes that cachestat found in the wrong page-cache
// state just before a timed load.
const unitOffState = "off-state-B"

// cacheCheck returns a sentence on what cachestat found before the timed
// loads, or "" when the results do not record it.
func cacheCheck(run *Run) string {
	var loads int
	var worst float64
	var where string
	for _, c := range run.Cells {
		s := c.Stat(unitOffState)
		if s == nil {
			continue
		}
		for _, v := range s.Sample.Values {
			loads++
			if v > worst {
				worst, where = v, c.Variant.String()+" "+c.Op.String()
			}
		}
	}
	switch {
	case loads == 0:
		return ""
	case worst == 0:
		return fmt.Sprintf(" Before each of the %d timed loads that record `%s`, cachestat found every checkpoint page in the intended state.", loads, unitOffState)
	default:
		return fmt.Sprintf(" Before the %d timed loads that record `%s`, cachestat found at most %s in the other state (%s).", loads, unitOffState, formatBytes(worst), where)
	}
}
