package main

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchproc"
)

// RowKey identifies a row: a benchmark name without the -GOMAXPROCS
// suffix, and a tidied unit (sec/op, B/s, disk-B...).
type RowKey struct {
	Name string
	Unit string
}

// Set is one input file's measurements, grouped by row.
type Set struct {
	Path string
	// Samples contains every measurement of each row, in input order.
	Samples map[RowKey][]float64
	// Rows lists the row keys in the order they first appear.
	Rows []RowKey
	// Units is the unit metadata (Unit lines) of the file.
	Units benchfmt.UnitMetadataMap
	// Procs lists the distinct GOMAXPROCS values seen in the names.
	Procs []string
	// Config maps each file configuration key to its distinct values.
	Config map[string][]string
}

// ReadSet reads one results file. Malformed benchmark lines are errors,
// because a gate that skipped them would judge on partial data.
func ReadSet(path string) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()

	// Projecting /gomaxprocs with the same parser removes it from
	// .fullname, so Save/x-2 and Save/x-4 land on one row.
	var parser benchproc.ProjectionParser
	filter, err := benchproc.NewFilter("*")
	if err != nil {
		return nil, err
	}
	nameBy, err := parser.Parse(".fullname", filter)
	if err != nil {
		return nil, err
	}
	procsBy, err := parser.Parse("/gomaxprocs", filter)
	if err != nil {
		return nil, err
	}

	set := &Set{
		Path:    path,
		Samples: make(map[RowKey][]float64),
		Config:  make(map[string][]string),
	}
	var syntaxErrs []error
	r := benchfmt.NewReader(f, path)
	for r.Scan() {
		switch rec := r.Result().(type) {
		case *benchfmt.SyntaxError:
			syntaxErrs = append(syntaxErrs, rec)
		case *benchfmt.Result:
			name := nameBy.Project(rec).StringValues()
			addDistinct(&set.Procs, procsBy.Project(rec).StringValues())
			for _, c := range rec.Config {
				if c.File {
					addDistinctConfig(set.Config, c.Key, string(c.Value))
				}
			}
			for _, v := range rec.Values {
				key := RowKey{Name: name, Unit: v.Unit}
				if _, ok := set.Samples[key]; !ok {
					set.Rows = append(set.Rows, key)
				}
				set.Samples[key] = append(set.Samples[key], v.Value)
			}
		}
	}
	if err := r.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(syntaxErrs) > 0 {
		return nil, fmt.Errorf("%s has %d malformed benchmark lines; fix or remove them and rerun:\n%w",
			path, len(syntaxErrs), errors.Join(syntaxErrs...))
	}
	set.Units = r.Units()
	return set, nil
}

func addDistinct(list *[]string, v string) {
	if !slices.Contains(*list, v) {
		*list = append(*list, v)
	}
}

func addDistinctConfig(m map[string][]string, key, value string) {
	list := m[key]
	addDistinct(&list, value)
	m[key] = list
}
