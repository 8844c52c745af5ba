package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"
	"golang.org/x/perf/benchproc"
)

// Units the harness reports, tidied by benchfmt (ns/op becomes sec/op,
// MB/s becomes B/s).
const (
	unitTime  = "sec/op"
	unitRate  = "B/s"
	unitDisk  = "disk-B"
	unitFiles = "files"
	unitRSS   = "peak-RSS-B"
)

// confidence is the level of the confidence intervals, as benchstat's
// default.
const confidence = 0.95

// Variant is one approach: a format with its codec, or the disk
// reference with its number of streams.
type Variant struct {
	Format  string // torchsave, zarr, py-torch, disk...
	Codec   string // raw, gzip, zstd, or "" for formats without one
	Streams string // requests in flight; set only for the disk reference
	// Verify is the verify= key of a copy that checks checksums on load
	// ("load"), kept apart so its loads never pool with the plain ones.
	Verify string
}

// String returns the variant as tables and charts label it:
// "torchsave", "zarr/gzip", "disk/streams=16", "zarr/raw+verify" (the
// harness's ID of a verify=load copy).
func (v Variant) String() string {
	s := v.Format
	if v.Codec != "" {
		s += "/" + v.Codec
	}
	if v.Streams != "" {
		s += "/streams=" + v.Streams
	}
	switch v.Verify {
	case "":
	case "load":
		s += "+verify"
	default:
		s += "/verify=" + v.Verify
	}
	return s
}

// IsDisk reports whether v is the disk reference that sets the limits.
func (v Variant) IsDisk() bool { return v.Format == "disk" }

// Op is an operation: a save, or a load from a cold or warm page cache.
type Op struct {
	Kind  string // "Save" or "Load"
	Cache string // "cold" or "warm" for loads
}

var (
	opSave = Op{Kind: "Save"}
	opCold = Op{Kind: "Load", Cache: "cold"}
	opWarm = Op{Kind: "Load", Cache: "warm"}
	allOps = []Op{opSave, opCold, opWarm}
)

// String returns "save", "cold load" or "warm load".
func (o Op) String() string {
	if o.Cache == "" {
		return strings.ToLower(o.Kind)
	}
	return o.Cache + " " + strings.ToLower(o.Kind)
}

// Stat is the summary of one unit's measurements in a cell.
type Stat struct {
	Sample  *benchmath.Sample
	Summary benchmath.Summary
}

// Median returns the center of the summary.
func (s *Stat) Median() float64 { return s.Summary.Center }

// Cell is every measurement of one variant and operation.
type Cell struct {
	Variant Variant
	Op      Op
	Stats   map[string]*Stat // by tidied unit
	// TensorBytes is the tensor-bytes configuration line, else the median
	// over result lines of B/s times sec/op (the bytes the benchmark
	// passed to b.SetBytes); 0 when unknown.
	TensorBytes float64

	values      map[string][]float64
	tensorBytes []float64
	residues    map[benchproc.Key]struct{}
}

// Stat returns the summary of unit, or nil.
func (c *Cell) Stat(unit string) *Stat {
	if c == nil {
		return nil
	}
	return c.Stats[unit]
}

// configLines is the file configuration of one model's results.
type configLines struct {
	// Config maps each file configuration key to its distinct values,
	// in the order first seen, and ConfigFiles maps each value to the
	// files that set it.
	Config      map[string][]string
	ConfigFiles map[string]map[string][]string
	ConfigKeys  []string
}

type cellKey struct {
	Variant Variant
	Op      Op
	Model   string // the model= key of the benchmark name
}

// Run is one results directory: every file's measurements, grouped.
type Run struct {
	Dir   string
	Files []string
	Model string
	configLines
	Procs    []string
	Cells    map[cellKey]*Cell
	Variants []Variant
	// Ignored lists benchmarks that are not a Save, or a Load with
	// cache=cold or cache=warm, of a format.
	Ignored []string
	// Warnings are problems worth a note in the report.
	Warnings []string
}

// Cell returns the cell of v and op, or nil.
func (r *Run) Cell(v Variant, op Op) *Cell { return r.Cells[cellKey{v, op, r.Model}] }

// ConfigValue returns the single value of a configuration key, the
// values joined with " / " when files disagree, or "" when absent.
func (r *Run) ConfigValue(key string) string {
	return strings.Join(r.Config[key], " / ")
}

// LoadRun reads every *.txt file in dir. When model is "", the run must
// contain a single model; otherwise only that model's results are kept.
func LoadRun(dir, model string) (*Run, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no *.txt result files in %s: pass the directory of one `make bench` run, such as results/<run-id>", dir)
	}
	sort.Strings(files)

	var parser benchproc.ProjectionParser
	filter, err := benchproc.NewFilter("*")
	if err != nil {
		return nil, err
	}
	keyBy, err := parser.Parse(".name,/format,/codec,/streams,/model,/cache,/verify", filter)
	if err != nil {
		return nil, err
	}
	procsBy, err := parser.Parse("/gomaxprocs", filter)
	if err != nil {
		return nil, err
	}
	// The residue holds every other key (file configuration, unknown
	// name keys): results that differ in it but share a cell are
	// reported, as benchstat does.
	residueBy := parser.Residue()
	fields := keyBy.Fields()
	field := func(k benchproc.Key, i int) string { return k.Get(fields[i]) }

	run := &Run{Dir: dir, Files: files, Cells: make(map[cellKey]*Cell)}
	// Configuration is kept per model, so that -model reports only the
	// chosen model's lines.
	configs := map[string]*configLines{}
	var syntaxErrs []error
	units := benchfmt.UnitMetadataMap{}
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		r := benchfmt.NewReader(f, path)
		for r.Scan() {
			switch rec := r.Result().(type) {
			case *benchfmt.SyntaxError:
				syntaxErrs = append(syntaxErrs, rec)
			case *benchfmt.Result:
				key := keyBy.Project(rec)
				name, format, model := field(key, 0), field(key, 1), field(key, 4)
				cache := field(key, 5)
				validOp := (name == "Save" && cache == "") || (name == "Load" && (cache == "cold" || cache == "warm"))
				if !validOp || format == "" {
					addDistinct(&run.Ignored, string(rec.Name.Full()))
					continue
				}
				if configs[model] == nil {
					configs[model] = &configLines{
						Config:      make(map[string][]string),
						ConfigFiles: make(map[string]map[string][]string),
					}
				}
				configs[model].record(rec, path)
				addDistinct(&run.Procs, procsBy.Project(rec).StringValues())
				v := Variant{Format: format, Codec: field(key, 2), Streams: field(key, 3), Verify: field(key, 6)}
				op := Op{Kind: name, Cache: cache}
				run.add(v, op, model, rec, residueBy.Project(rec))
			}
		}
		for k, m := range r.Units() {
			units[k] = m
		}
		err = r.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
	if len(syntaxErrs) > 0 {
		return nil, fmt.Errorf("%s: %d malformed benchmark lines; fix or remove them:\n%w",
			dir, len(syntaxErrs), errors.Join(syntaxErrs...))
	}
	if err := run.pickModel(configs, model); err != nil {
		return nil, err
	}
	run.configLines = *configs[run.Model]
	run.summarize(units)
	// The harness states the exact tensor bytes; B/s times sec/op only
	// approximates them, because Go prints MB/s with two decimals.
	if n, err := strconv.ParseFloat(run.ConfigValue("tensor-bytes"), 64); err == nil && n > 0 {
		for _, c := range run.Cells {
			c.TensorBytes = n
		}
	}
	return run, nil
}

// record notes the file configuration of a result.
func (r *configLines) record(rec *benchfmt.Result, path string) {
	for _, c := range rec.Config {
		if !c.File {
			continue
		}
		value := string(c.Value)
		if _, ok := r.Config[c.Key]; !ok {
			r.ConfigKeys = append(r.ConfigKeys, c.Key)
			r.ConfigFiles[c.Key] = make(map[string][]string)
		}
		list := r.Config[c.Key]
		addDistinct(&list, value)
		r.Config[c.Key] = list
		files := r.ConfigFiles[c.Key][value]
		addDistinct(&files, filepath.Base(path))
		r.ConfigFiles[c.Key][value] = files
	}
}

// add files the measurements of one result line under its cell.
func (r *Run) add(v Variant, op Op, model string, rec *benchfmt.Result, residue benchproc.Key) {
	key := cellKey{v, op, model}
	c := r.Cells[key]
	if c == nil {
		c = &Cell{Variant: v, Op: op, values: map[string][]float64{}, residues: map[benchproc.Key]struct{}{}}
		r.Cells[key] = c
	}
	for _, val := range rec.Values {
		c.values[val.Unit] = append(c.values[val.Unit], val.Value)
	}
	rate, okRate := rec.Value(unitRate)
	secs, okTime := rec.Value(unitTime)
	if okRate && okTime {
		c.tensorBytes = append(c.tensorBytes, rate*secs)
	}
	c.residues[residue] = struct{}{}
}

// pickModel keeps the cells of one model: the requested one, or the only
// one in the run.
func (r *Run) pickModel(models map[string]*configLines, want string) error {
	var names []string
	for m := range models {
		names = append(names, m)
	}
	sort.Strings(names)
	switch {
	case len(names) == 0:
		return fmt.Errorf("%s: no BenchmarkSave or BenchmarkLoad results with a format= key", r.Dir)
	case want != "":
		if models[want] == nil {
			return fmt.Errorf("%s has no results for model=%s; it has model=%s", r.Dir, want, strings.Join(names, ", model="))
		}
		r.Model = want
	case len(names) > 1:
		return fmt.Errorf("%s mixes models (model=%s); choose one with -model", r.Dir, strings.Join(names, ", model="))
	default:
		r.Model = names[0]
	}
	for k := range r.Cells {
		if k.Model != r.Model {
			delete(r.Cells, k)
		}
	}
	return nil
}

// summarize computes each cell's medians and confidence intervals with
// benchmath, as benchstat does, and orders the variants.
func (r *Run) summarize(units benchfmt.UnitMetadataMap) {
	seen := map[Variant]bool{}
	keys := make([]cellKey, 0, len(r.Cells))
	for k := range r.Cells {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Variant != keys[j].Variant {
			return variantLess(keys[i].Variant, keys[j].Variant)
		}
		return opIndex(keys[i].Op) < opIndex(keys[j].Op)
	})
	for _, k := range keys {
		c := r.Cells[k]
		if !seen[c.Variant] {
			seen[c.Variant] = true
			r.Variants = append(r.Variants, c.Variant)
		}
		c.Stats = make(map[string]*Stat, len(c.values))
		for unit, values := range c.values {
			sample := benchmath.NewSample(values, &benchmath.DefaultThresholds)
			c.Stats[unit] = &Stat{Sample: sample, Summary: units.GetAssumption(unit).Summary(sample, confidence)}
		}
		if len(c.tensorBytes) > 0 {
			sample := benchmath.NewSample(c.tensorBytes, &benchmath.DefaultThresholds)
			c.TensorBytes = benchmath.AssumeNothing.Summary(sample, confidence).Center
		}
		if nsk := benchproc.NonSingularFields(residueKeys(c.residues)); len(nsk) > 0 {
			var names []string
			for _, f := range nsk {
				names = append(names, f.Name)
			}
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s %s: results that were pooled differ in %s",
				c.Variant, c.Op, strings.Join(names, ", ")))
		}
	}
}

func residueKeys(m map[benchproc.Key]struct{}) []benchproc.Key {
	keys := make([]benchproc.Key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

func opIndex(o Op) int {
	if i := slices.Index(allOps, o); i >= 0 {
		return i
	}
	return len(allOps)
}

func addDistinct(list *[]string, v string) {
	if !slices.Contains(*list, v) {
		*list = append(*list, v)
	}
}
