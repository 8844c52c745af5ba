package main

import (
	"fmt"
	"math"
	"os"

	chart "github.com/wcharczuk/go-chart/v2"
	"github.com/wcharczuk/go-chart/v2/drawing"
)

// The charts are horizontal bar charts drawn with go-chart's renderer:
// its own BarChart is vertical, which leaves no room for fifteen labels
// like "py-tensorstore", and draws neither confidence intervals nor
// reference lines.

// bar is one approach's median with its 95% confidence interval (Lo and
// Hi are infinite when there are too few samples for one).
type bar struct {
	Label         string
	Value, Lo, Hi float64
	Color         drawing.Color
}

// refLine is a vertical reference, such as a disk limit.
type refLine struct {
	Label  string
	Value  float64
	Color  drawing.Color
	Dashed bool
}

func (l refLine) dash() []float64 {
	if l.Dashed {
		return []float64{6, 4}
	}
	return nil
}

// panel is one bar chart. A PNG stacks one or more panels.
type panel struct {
	Title string
	Axis  string // the x axis label, with its unit
	Bars  []bar
	Lines []refLine
	// Format formats a bar's value for the label at its end.
	Format func(float64) string
}

// legendEntry explains a bar color under the panels.
type legendEntry struct {
	Label string
	Color drawing.Color
}

const (
	chartWidth  = 960
	chartMargin = 16
	barHeight   = 20
	barGap      = 6
	titleHeight = 34
	axisHeight  = 44
	lineLegendH = 22
	fontSize    = 11
	titleSize   = 13.0
)

var (
	colorText  = drawing.ColorFromHex("222222")
	colorGrid  = drawing.ColorFromHex("dddddd")
	colorAxis  = drawing.ColorFromHex("888888")
	colorDisk  = drawing.ColorFromHex("9e9e9e")
	colorGo    = drawing.ColorFromHex("3b75af")
	colorPy    = drawing.ColorFromHex("ef8636")
	colorBase  = drawing.ColorFromHex("2e7d32")
	colorLimit = []drawing.Color{
		drawing.ColorFromHex("c62828"),
		drawing.ColorFromHex("6a1b9a"),
		drawing.ColorFromHex("00838f"),
	}
)

func panelHeight(p panel) int {
	return titleHeight + len(p.Bars)*(barHeight+barGap) + axisHeight + lineLegendH*len(p.Lines)
}

// writePNG draws the panels one under the other, then the legend, into
// a PNG file at path.
func writePNG(path string, panels []panel, legend []legendEntry) error {
	height := chartMargin
	for _, p := range panels {
		height += panelHeight(p) + chartMargin
	}
	if len(legend) > 0 {
		height += lineLegendH + chartMargin
	}
	r, err := chart.PNG(chartWidth, height)
	if err != nil {
		return err
	}
	font, err := chart.GetDefaultFont()
	if err != nil {
		return err
	}
	r.SetFont(font)
	fillRect(r, 0, 0, chartWidth, height, drawing.ColorWhite)

	y := chartMargin
	for _, p := range panels {
		drawPanel(r, p, y)
		y += panelHeight(p) + chartMargin
	}
	if len(legend) > 0 {
		drawLegend(r, legend, y)
	}

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.Save(f); err != nil {
		f.Close()
		return fmt.Errorf("write chart %s: %w", path, err)
	}
	return f.Close()
}

func drawPanel(r chart.Renderer, p panel, top int) {
	r.SetFontColor(colorText)
	r.SetFontSize(titleSize)
	r.Text(p.Title, chartMargin, top+int(titleSize)+4)

	// The label column is as wide as the longest label.
	r.SetFontSize(float64(fontSize))
	labelWidth := 0
	for _, b := range p.Bars {
		labelWidth = max(labelWidth, r.MeasureText(b.Label).Width())
	}
	x0 := chartMargin + labelWidth + 10
	x1 := chartWidth - chartMargin - 80 // room for the value at a bar's end
	barsTop := top + titleHeight
	barsBottom := barsTop + len(p.Bars)*(barHeight+barGap)

	maxValue := 0.0
	for _, b := range p.Bars {
		maxValue = max(maxValue, b.Value)
		if !math.IsInf(b.Hi, 0) && !math.IsNaN(b.Hi) {
			maxValue = max(maxValue, b.Hi)
		}
	}
	for _, l := range p.Lines {
		maxValue = max(maxValue, l.Value)
	}
	step := niceStep(maxValue)
	axisMax := math.Ceil(maxValue/step) * step
	if axisMax <= 0 {
		axisMax = 1
	}
	xOf := func(v float64) int { return x0 + int(math.Round(v/axisMax*float64(x1-x0))) }

	// Grid lines and tick labels.
	for v := 0.0; v <= axisMax*1.0001; v += step {
		x := xOf(v)
		strokeLine(r, x, barsTop-4, x, barsBottom, colorGrid, 1, nil)
		label := trimFloat(v)
		w := r.MeasureText(label).Width()
		r.SetFontColor(colorAxis)
		r.Text(label, x-w/2, barsBottom+fontSize+6)
	}
	r.SetFontColor(colorText)
	axisWidth := r.MeasureText(p.Axis).Width()
	r.Text(p.Axis, x0+(x1-x0-axisWidth)/2, barsBottom+2*fontSize+16)

	// Reference lines go under the bars so the value labels stay legible.
	for _, l := range p.Lines {
		x := xOf(l.Value)
		strokeLine(r, x, barsTop-6, x, barsBottom+2, l.Color, 2, l.dash())
	}

	for i, b := range p.Bars {
		y := barsTop + i*(barHeight+barGap)
		r.SetFontColor(colorText)
		w := r.MeasureText(b.Label).Width()
		r.Text(b.Label, x0-10-w, y+barHeight/2+fontSize/2-1)
		end := xOf(b.Value)
		fillRect(r, x0, y, max(end, x0+1), y+barHeight, b.Color)

		// The confidence interval as a whisker with end caps.
		valueEnd := end
		if !math.IsInf(b.Lo, 0) && !math.IsInf(b.Hi, 0) && !math.IsNaN(b.Lo) && b.Hi > b.Lo {
			lo, hi := xOf(b.Lo), xOf(b.Hi)
			mid := y + barHeight/2
			strokeLine(r, lo, mid, hi, mid, colorText, 1, nil)
			strokeLine(r, lo, mid-4, lo, mid+4, colorText, 1, nil)
			strokeLine(r, hi, mid-4, hi, mid+4, colorText, 1, nil)
			valueEnd = max(end, hi)
		}
		if p.Format != nil {
			r.SetFontColor(colorText)
			r.Text(p.Format(b.Value), valueEnd+6, y+barHeight/2+fontSize/2-1)
		}
	}

	// Each reference line is explained in a row under the axis label.
	for i, l := range p.Lines {
		ly := barsBottom + axisHeight + i*lineLegendH + lineLegendH/2
		strokeLine(r, x0, ly, x0+28, ly, l.Color, 2, l.dash())
		r.SetFontColor(colorText)
		r.Text(l.Label, x0+36, ly+fontSize/2-1)
	}
}

func drawLegend(r chart.Renderer, legend []legendEntry, top int) {
	x := chartMargin
	y := top + lineLegendH/2
	r.SetFontSize(float64(fontSize))
	for _, e := range legend {
		fillRect(r, x, y-6, x+14, y+6, e.Color)
		r.SetFontColor(colorText)
		r.Text(e.Label, x+20, y+fontSize/2-1)
		x += 20 + r.MeasureText(e.Label).Width() + 24
	}
}

func fillRect(r chart.Renderer, x0, y0, x1, y1 int, c drawing.Color) {
	r.SetFillColor(c)
	r.SetStrokeColor(c)
	r.SetStrokeWidth(0)
	r.SetStrokeDashArray(nil)
	r.MoveTo(x0, y0)
	r.LineTo(x1, y0)
	r.LineTo(x1, y1)
	r.LineTo(x0, y1)
	r.Close()
	r.Fill()
}

func strokeLine(r chart.Renderer, x0, y0, x1, y1 int, c drawing.Color, width float64, dash []float64) {
	r.SetStrokeColor(c)
	r.SetStrokeWidth(width)
	r.SetStrokeDashArray(dash)
	r.MoveTo(x0, y0)
	r.LineTo(x1, y1)
	r.Stroke()
	r.SetStrokeDashArray(nil)
}

// niceStep returns a tick spacing of 1, 2 or 5 times a power of ten
// that puts three to seven ticks on an axis ending at maxValue.
func niceStep(maxValue float64) float64 {
	if maxValue <= 0 || math.IsInf(maxValue, 0) || math.IsNaN(maxValue) {
		return 1
	}
	raw := maxValue / 6
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*pow {
			return m * pow
		}
	}
	return 10 * pow
}

// trimFloat formats a tick value with no more digits than it needs.
func trimFloat(v float64) string {
	return fmt.Sprintf("%.6g", math.Round(v*1e6)/1e6)
}
