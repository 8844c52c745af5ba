package main

import (
	"fmt"
	"slices"
	"strings"
)

// belowLimitFraction is the share of the disk limit under which the
// analysis calls an approach slow for its operation.
const belowLimitFraction = 0.85

// aboveLimitFraction is the share of the disk limit above which the
// analysis states that the reference was no upper bound (small checkpoints or
// cached data can beat O_DIRECT); 5% above leaves room for noise.
const aboveLimitFraction = 1.05

// baseline is the approach every other one is compared with: libtorch's
// own serializer.
var baseline = Variant{Format: "torchsave"}

// expectation is an approach a full `make bench` run measures and the
// operations it measures it for.
type expectation struct {
	Variant Variant
	Ops     []Op
}

// expected lists the approaches of a full run in the order tables show
// them: the disk reference, the Go formats, then the Python peers. An
// expectation with an empty codec is met by the format with any codec.
var expected = []expectation{
	{Variant{Format: "disk", Streams: "1"}, allOps},
	// Warm loads read the page cache; one stream is the reference there.
	{Variant{Format: "disk", Streams: "16"}, []Op{opSave, opCold}},
	{Variant{Format: "torchsave"}, allOps},
	{Variant{Format: "safetensors"}, allOps},
	{Variant{Format: "zarr", Codec: "raw"}, allOps},
	{Variant{Format: "zarr", Codec: "gzip"}, allOps},
	{Variant{Format: "zarr", Codec: "zstd"}, allOps},
	{Variant{Format: "t5x", Codec: "raw"}, allOps},
	{Variant{Format: "t5x", Codec: "gzip"}, allOps},
	{Variant{Format: "t5x", Codec: "zstd"}, allOps},
	{Variant{Format: "py-torch"}, allOps},
	// torch.load(mmap=True) reads what py-torch saved; it has no save.
	{Variant{Format: "py-torch-mmap"}, []Op{opCold, opWarm}},
	{Variant{Format: "py-safetensors"}, allOps},
	{Variant{Format: "py-tensorstore"}, allOps},
	{Variant{Format: "py-t5x"}, allOps},
}

// variantRank orders variants as the expected list does; unknown ones
// come after, by name. A verify=load copy ranks with its plain variant,
// so it follows it.
func variantRank(v Variant) int {
	v.Verify = ""
	for i, e := range expected {
		if e.Variant == v {
			return i
		}
	}
	for i, e := range expected {
		if e.Variant.Codec == "" && e.Variant.Streams == "" && e.Variant.Format == v.Format {
			return i
		}
	}
	return len(expected)
}

func variantLess(a, b Variant) bool {
	ra, rb := variantRank(a), variantRank(b)
	if ra != rb {
		return ra < rb
	}
	if a.Format == "disk" && b.Format == "disk" {
		return streamsLess(a.Streams, b.Streams)
	}
	return a.String() < b.String()
}

func streamsLess(a, b string) bool {
	var x, y int
	fmt.Sscan(a, &x)
	fmt.Sscan(b, &y)
	return x < y
}

// Missing returns, for each expected approach the run lacks entirely or
// in part, a phrase such as "py-t5x (all)" or "t5x/zstd (warm load)".
func (r *Run) Missing() []string {
	var missing []string
	for _, e := range expected {
		var absent []string
		for _, op := range e.Ops {
			if !r.hasMatch(e.Variant, op) {
				absent = append(absent, op.String())
			}
		}
		switch {
		case len(absent) == 0:
		case len(absent) == len(e.Ops):
			missing = append(missing, e.Variant.String()+" (all)")
		default:
			missing = append(missing, e.Variant.String()+" ("+strings.Join(absent, ", ")+")")
		}
	}
	return missing
}

// hasMatch reports whether the run has a cell meeting expectation v.
func (r *Run) hasMatch(v Variant, op Op) bool {
	if r.Cell(v, op) != nil {
		return true
	}
	if v.Codec != "" || v.Streams != "" {
		return false
	}
	for _, have := range r.Variants {
		if have.Format == v.Format && r.Cell(have, op) != nil {
			return true
		}
	}
	return false
}

// Limit is the disk reference for one operation: every disk variant
// measured for it, and the fastest of them, which sets the limit.
type Limit struct {
	Op   Op
	Refs []*Cell
	Best *Cell
}

// Limit returns the disk limit of op; Best is nil when the run has no
// disk reference for op.
func (r *Run) Limit(op Op) Limit {
	l := Limit{Op: op}
	for _, v := range r.Variants {
		c := r.Cell(v, op)
		if !v.IsDisk() || c.Stat(unitRate) == nil {
			continue
		}
		l.Refs = append(l.Refs, c)
		if l.Best == nil || c.Stat(unitRate).Median() > l.Best.Stat(unitRate).Median() {
			l.Best = c
		}
	}
	return l
}

// Rate returns the limit's median throughput in bytes per second, or 0
// without a disk reference.
func (l Limit) Rate() float64 {
	if l.Best == nil {
		return 0
	}
	return l.Best.Stat(unitRate).Median()
}

// FractionOfLimit returns c's median throughput as a fraction of the
// limit's (1 = as fast as the disk reference). ok is false when either
// throughput is unknown.
func FractionOfLimit(c *Cell, l Limit) (fraction float64, ok bool) {
	rate := c.Stat(unitRate)
	if rate == nil || l.Rate() <= 0 {
		return 0, false
	}
	return rate.Median() / l.Rate(), true
}

// SpeedupOver returns base's median time divided by c's: 2 means c takes
// half as long as base. ok is false when either time is unknown.
func SpeedupOver(c, base *Cell) (speedup float64, ok bool) {
	t, bt := c.Stat(unitTime), base.Stat(unitTime)
	if t == nil || bt == nil || t.Median() <= 0 {
		return 0, false
	}
	return bt.Median() / t.Median(), true
}

// CompressionRatio returns the tensor bytes divided by the median bytes
// on disk: above 1 the checkpoint is smaller than its tensors. ok is
// false when either is unknown.
func CompressionRatio(c *Cell) (ratio float64, ok bool) {
	disk := c.Stat(unitDisk)
	if c == nil || disk == nil || disk.Median() <= 0 || c.TensorBytes <= 0 {
		return 0, false
	}
	return c.TensorBytes / disk.Median(), true
}

// firstCell returns the variant's cell of the first operation in ops
// that the run has, or nil.
func (r *Run) firstCell(v Variant, ops ...Op) *Cell {
	for _, op := range ops {
		if c := r.Cell(v, op); c != nil {
			return c
		}
	}
	return nil
}

// variantsWith returns the run's variants that have a cell for op.
func (r *Run) variantsWith(op Op) []Variant {
	var vs []Variant
	for _, v := range r.Variants {
		if r.Cell(v, op) != nil {
			vs = append(vs, v)
		}
	}
	return slices.Clip(vs)
}
