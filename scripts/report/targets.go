package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"ckptbench/formats/t5x"
)

// The goals for the T5X-style approach (format=t5x), checked for each of
// its codecs in the Targets section.
const (
	targetFormat = "t5x"
	// targetLimitFraction is the share of the disk limit that a durable
	// save and a cold load must reach.
	targetLimitFraction = 0.85
	// targetPeerSpeedup is how many times as fast as zarr with the same
	// codec and as the Python TensorStore peers each operation must be.
	targetPeerSpeedup = 1.5
	// targetBaselineSpeedup means no slower than torchsave.
	targetBaselineSpeedup = 1.0
	// budgetKey is the configuration line that carries t5x's ByteBudget.
	budgetKey = "t5x-byte-budget"
)

type targetKind int

const (
	kindLimit   targetKind = iota // throughput as a fraction of the disk limit, at least Goal
	kindSpeedup                   // the other approach's time over t5x's, at least Goal
	kindMemory                    // peak RSS during the save in bytes, at most Goal
)

type targetStatus int

const (
	notMeasured targetStatus = iota
	met
	missed
)

// targetRule is one goal that every t5x codec is checked against.
type targetRule struct {
	Op   Op
	Kind targetKind
	// Peer is the format compared with in a speedup rule. With SameCodec,
	// only the peer with the t5x variant's codec counts. Otherwise
	// peerVariant picks the peer's variant, as the Python peers and
	// torchsave have a single one.
	Peer      string
	SameCodec bool
	Goal      float64 // unused for kindMemory, whose goal is computed
}

var targetRules = []targetRule{
	{Op: opSave, Kind: kindLimit, Goal: targetLimitFraction},
	{Op: opSave, Kind: kindSpeedup, Peer: "zarr", SameCodec: true, Goal: targetPeerSpeedup},
	{Op: opSave, Kind: kindSpeedup, Peer: "py-tensorstore", Goal: targetPeerSpeedup},
	{Op: opSave, Kind: kindSpeedup, Peer: "py-t5x", Goal: targetPeerSpeedup},
	{Op: opSave, Kind: kindSpeedup, Peer: baseline.Format, Goal: targetBaselineSpeedup},
	{Op: opSave, Kind: kindMemory},
	{Op: opCold, Kind: kindLimit, Goal: targetLimitFraction},
	{Op: opCold, Kind: kindSpeedup, Peer: "zarr", SameCodec: true, Goal: targetPeerSpeedup},
	{Op: opCold, Kind: kindSpeedup, Peer: "py-tensorstore", Goal: targetPeerSpeedup},
	{Op: opCold, Kind: kindSpeedup, Peer: "py-t5x", Goal: targetPeerSpeedup},
	{Op: opCold, Kind: kindSpeedup, Peer: baseline.Format, Goal: targetBaselineSpeedup},
	{Op: opWarm, Kind: kindSpeedup, Peer: "zarr", SameCodec: true, Goal: targetPeerSpeedup},
	{Op: opWarm, Kind: kindSpeedup, Peer: "py-tensorstore", Goal: targetPeerSpeedup},
	{Op: opWarm, Kind: kindSpeedup, Peer: "py-t5x", Goal: targetPeerSpeedup},
	{Op: opWarm, Kind: kindSpeedup, Peer: baseline.Format, Goal: targetBaselineSpeedup},
}

// Target is one goal checked for one t5x variant against the run's
// medians.
type Target struct {
	Variant Variant
	Op      Op
	Kind    targetKind
	// Against names what t5x is compared with: the disk reference that
	// sets the limit, the other approach, or "" for kindMemory.
	Against string
	// Goal and Measured are fractions of the limit (kindLimit), speed
	// ratios (kindSpeedup) or bytes (kindMemory).
	Goal     float64
	Measured float64
	Status   targetStatus
	// Reason names the missing side when Status is notMeasured.
	Reason string
}

// TargetSet is every target of one t5x variant.
type TargetSet struct {
	Variant Variant
	Targets []Target
}

// Count returns how many targets have status s.
func (ts TargetSet) Count(s targetStatus) int {
	n := 0
	for _, t := range ts.Targets {
		if t.Status == s {
			n++
		}
	}
	return n
}

// byteBudget is t5x's ByteBudget as the memory target uses it.
type byteBudget struct {
	Bytes float64 // 0 when the results carry an unusable value
	// Source describes where Bytes came from, or why there is none.
	Source  string
	Assumed bool // true when the results do not carry the budget
}

// runByteBudget returns the budget from the run's t5x-byte-budget line,
// or formats/t5x's default when the results have no such line.
func runByteBudget(run *Run) byteBudget {
	values := run.Config[budgetKey]
	switch len(values) {
	case 0:
		return byteBudget{
			Bytes:   t5x.DefaultByteBudget,
			Source:  fmt.Sprintf("assumed: the results have no `%s` line, so this is formats/t5x's DefaultByteBudget", budgetKey),
			Assumed: true,
		}
	case 1:
		n, err := strconv.ParseInt(values[0], 10, 64)
		if err != nil || n <= 0 {
			return byteBudget{Source: fmt.Sprintf("`%s: %s` in %s is not a positive whole number of bytes",
				budgetKey, values[0], strings.Join(run.ConfigFiles[budgetKey][values[0]], ", "))}
		}
		return byteBudget{Bytes: float64(n), Source: fmt.Sprintf("from the results' `%s` line", budgetKey)}
	}
	return byteBudget{Source: fmt.Sprintf("the result files disagree on `%s`: %s", budgetKey, configSources(run, budgetKey))}
}

// t5xVariants returns the t5x variants to check: every t5x codec a full
// run measures, then any other t5x codec this run has.
func t5xVariants(run *Run) []Variant {
	var vs []Variant
	for _, e := range expected {
		if e.Variant.Format == targetFormat {
			vs = append(vs, e.Variant)
		}
	}
	for _, v := range run.Variants {
		if v.Format == targetFormat && v.Verify == "" && !slices.Contains(vs, v) {
			vs = append(vs, v)
		}
	}
	return vs
}

// Targets checks every target rule for every t5x variant.
func Targets(run *Run, budget byteBudget) []TargetSet {
	var sets []TargetSet
	for _, v := range t5xVariants(run) {
		set := TargetSet{Variant: v}
		for _, rule := range targetRules {
			set.Targets = append(set.Targets, checkTarget(run, v, rule, budget))
		}
		sets = append(sets, set)
	}
	return sets
}

func checkTarget(run *Run, v Variant, rule targetRule, budget byteBudget) Target {
	t := Target{Variant: v, Op: rule.Op, Kind: rule.Kind, Goal: rule.Goal}
	c := run.Cell(v, rule.Op)
	absent := fmt.Sprintf("no %s %s in this run", v, rule.Op)
	switch rule.Kind {
	case kindLimit:
		limit := run.Limit(rule.Op)
		if limit.Best != nil {
			t.Against = limit.Best.Variant.String()
		}
		fraction, ok := FractionOfLimit(c, limit)
		switch {
		case c.Stat(unitRate) == nil:
			t.Reason = absent
		case !ok:
			t.Reason = fmt.Sprintf("no disk reference for the %s in this run", rule.Op)
		default:
			t.measure(fraction, fraction >= t.Goal)
		}
	case kindSpeedup:
		peer := run.peerVariant(rule, v.Codec)
		t.Against = peer.String()
		speedup, ok := SpeedupOver(c, run.Cell(peer, rule.Op))
		switch {
		case c.Stat(unitTime) == nil:
			t.Reason = absent
		case !ok:
			t.Reason = fmt.Sprintf("no %s %s in this run", peer, rule.Op)
		default:
			t.measure(speedup, speedup >= t.Goal)
		}
	case kindMemory:
		tensorBytes := run.TensorBytes()
		t.Goal = tensorBytes + budget.Bytes
		rss := c.Stat(unitRSS)
		switch {
		case rss == nil:
			t.Reason = fmt.Sprintf("no peak RSS of a %s %s in this run", v, rule.Op)
		case tensorBytes <= 0:
			t.Reason = "the model's tensor bytes are unknown"
		case budget.Bytes <= 0:
			t.Reason = budget.Source
		default:
			t.measure(rss.Median(), rss.Median() <= t.Goal)
		}
	}
	return t
}

func (t *Target) measure(value float64, ok bool) {
	t.Measured = value
	t.Status = missed
	if ok {
		t.Status = met
	}
}

// peerVariant returns the variant a speedup rule compares v's codec with.
// A peer without codecs (torchsave, the Python peers) is taken as is,
// unless the run has it with the same codec.
func (r *Run) peerVariant(rule targetRule, codec string) Variant {
	same := Variant{Format: rule.Peer, Codec: codec}
	if rule.SameCodec || r.firstCell(same, allOps...) != nil {
		return same
	}
	return Variant{Format: rule.Peer}
}

// Shortfall describes how far a missed target is from its goal: the
// factor by which throughput or speed must grow, or the bytes over the
// memory bound.
func (t Target) Shortfall() string {
	switch t.Kind {
	case kindLimit, kindSpeedup:
		if t.Measured <= 0 {
			return "no throughput"
		}
		factor := t.Goal / t.Measured
		if t.Kind == kindLimit {
			return fmt.Sprintf("needs %s its throughput", formatTimes(factor))
		}
		return fmt.Sprintf("needs %s its speed (%s less time)", formatTimes(factor), formatPercent(1-1/factor))
	case kindMemory:
		over := t.Measured - t.Goal
		return fmt.Sprintf("over by %s (%s of the bound)", formatBytes(over), formatPercent(over/t.Goal))
	}
	return ""
}
