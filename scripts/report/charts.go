package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/wcharczuk/go-chart/v2/drawing"
)

// Chart is one PNG the report links to.
type Chart struct {
	Name  string // file name inside the chart directory
	Title string // alt text in comparison.md
}

// The charts, in the order comparison.md shows them.
var (
	chartSave       = Chart{"save-time.png", "Save time"}
	chartCold       = Chart{"load-cold-time.png", "Cold load time"}
	chartWarm       = Chart{"load-warm-time.png", "Warm load time"}
	chartSize       = Chart{"disk-size.png", "Size on disk"}
	chartThroughput = Chart{"throughput.png", "Throughput against the disk limit"}
)

var opCharts = map[Op]Chart{opSave: chartSave, opCold: chartCold, opWarm: chartWarm}

var legend = []legendEntry{
	{"disk reference (O_DIRECT)", colorDisk},
	{"torchsave (baseline)", colorBase},
	{"Go formats", colorGo},
	{"Python peers", colorPy},
}

func variantColor(v Variant) drawing.Color {
	switch {
	case v.IsDisk():
		return colorDisk
	case v == baseline:
		return colorBase
	case strings.HasPrefix(v.Format, "py-"):
		return colorPy
	}
	return colorGo
}

// WriteCharts draws every chart the run has data for into dir and
// returns them.
func WriteCharts(run *Run, dir string) ([]Chart, error) {
	var written []Chart
	write := func(c Chart, panels []panel) error {
		for _, p := range panels {
			if len(p.Bars) == 0 {
				return nil
			}
		}
		if err := writePNG(filepath.Join(dir, c.Name), panels, legend); err != nil {
			return err
		}
		written = append(written, c)
		return nil
	}
	for _, op := range allOps {
		if err := write(opCharts[op], []panel{timePanel(run, op)}); err != nil {
			return nil, err
		}
	}
	if err := write(chartSize, []panel{sizePanel(run)}); err != nil {
		return nil, err
	}
	var throughput []panel
	for _, op := range allOps {
		if p := throughputPanel(run, op); len(p.Bars) > 0 {
			throughput = append(throughput, p)
		}
	}
	if len(throughput) > 0 {
		if err := write(chartThroughput, throughput); err != nil {
			return nil, err
		}
	}
	return written, nil
}

func timePanel(run *Run, op Op) panel {
	p := panel{
		Title:  fmt.Sprintf("%s of %s, %s: time (median, 95%% CI), shorter is better", capitalize(op.String()), run.Model, run.weightsShort()),
		Axis:   "seconds",
		Format: func(v float64) string { return fmt.Sprintf("%.3g s", v) },
	}
	for _, v := range run.variantsWith(op) {
		s := run.Cell(v, op).Stat(unitTime)
		if s == nil {
			continue
		}
		p.Bars = append(p.Bars, bar{v.String(), s.Median(), s.Summary.Lo, s.Summary.Hi, variantColor(v)})
	}
	return p
}

func sizePanel(run *Run) panel {
	p := panel{
		Title:  fmt.Sprintf("Size on disk of %s, %s (median), smaller is better", run.Model, run.weightsShort()),
		Axis:   "GB (10^9 bytes)",
		Format: func(v float64) string { return fmt.Sprintf("%.3f GB", v) },
	}
	tensorBytes := 0.0
	for _, v := range run.Variants {
		if v.IsDisk() {
			continue
		}
		c := run.firstCell(v, allOps...)
		s := c.Stat(unitDisk)
		if s == nil {
			continue
		}
		tensorBytes = max(tensorBytes, c.TensorBytes)
		p.Bars = append(p.Bars, bar{v.String(), s.Median() / 1e9, s.Summary.Lo / 1e9, s.Summary.Hi / 1e9, variantColor(v)})
	}
	if tensorBytes > 0 {
		p.Lines = append(p.Lines, refLine{
			Label: fmt.Sprintf("tensor bytes: %.3f GB", tensorBytes/1e9),
			Value: tensorBytes / 1e9, Color: colorLimit[0], Dashed: true,
		})
	}
	return p
}

func throughputPanel(run *Run, op Op) panel {
	p := panel{
		Title:  fmt.Sprintf("%s throughput (median, 95%% CI) against the disk limit, longer is better", capitalize(op.String())),
		Axis:   "GB/s (tensor bytes / time)",
		Format: func(v float64) string { return fmt.Sprintf("%.3g GB/s", v) },
	}
	limit := run.Limit(op)
	for i, ref := range limit.Refs {
		label := fmt.Sprintf("%s: %.3g GB/s", ref.Variant, ref.Stat(unitRate).Median()/1e9)
		if ref == limit.Best {
			label += " (the limit)"
		}
		p.Lines = append(p.Lines, refLine{Label: label, Value: ref.Stat(unitRate).Median() / 1e9,
			Color: colorLimit[i%len(colorLimit)], Dashed: true})
	}
	for _, v := range run.variantsWith(op) {
		s := run.Cell(v, op).Stat(unitRate)
		if v.IsDisk() || s == nil {
			continue
		}
		p.Bars = append(p.Bars, bar{v.String(), s.Median() / 1e9, s.Summary.Lo / 1e9, s.Summary.Hi / 1e9, variantColor(v)})
	}
	return p
}

// weightsShort returns "synthetic weights" or "real weights" for titles.
func (r *Run) weightsShort() string {
	switch r.WeightsKind() {
	case weightsSynthetic:
		return "synthetic weights"
	case weightsReal:
		return "real weights"
	}
	return "weights of unknown source"
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
