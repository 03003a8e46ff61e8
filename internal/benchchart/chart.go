// Package benchchart records the runs of a counter benchmark while they go
// (a live progress line, and the buffer's dirty rows and oldest age over
// time) and draws the results as one SVG file: throughput per mode as bars on
// a log scale, and the write-back runs' oldest age against max_loss and dirty
// rows over time. It serves "writeback bench" and examples/pageviews, and
// uses the standard library only.
package benchchart

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Bar is one mode's throughput.
type Bar struct {
	Label string
	Value float64 // writes per second; negative, NaN and Inf are drawn as 0
	Note  string  // printed after the value, e.g. "56.4× direct"
}

// Point is one reading of a write-back run's buffer.
type Point struct {
	At     time.Duration // since the run started
	Dirty  int           // rows buffered and not yet committed
	Oldest time.Duration // age of the oldest of them
}

// Series is one write-back run's readings, in time order.
type Series struct {
	Label  string // the mode; a Bar with the same label gets the same colour
	Points []Point
}

// Chart is what WriteSVG draws. Empty parts are left out: no Bars, no
// throughput panel; no Series, no time panels.
type Chart struct {
	Title    string
	Subtitle string
	Unit     string // the bars' unit, e.g. "writes/s"
	Bars     []Bar
	Series   []Series
	MaxLoss  time.Duration // drawn as a line on the oldest-age panel when > 0
	Span     time.Duration // the time axis' length; 0: up to the latest point
}

// Layout, in SVG user units.
const (
	width       = 880
	margin      = 20
	barLabelW   = 250 // left column holding the bars' labels
	barValueW   = 200 // right column holding the values
	barH        = 22
	barGap      = 8
	panelTitleH = 30
	plotH       = 190
	plotLeft    = 80 // room for the y axis labels
	plotRight   = width - margin - 10
	axisLabelH  = 34
	legendRowH  = 20
)

// palette gives the bars and series their colours, by position (colour-blind
// safe, after Okabe and Ito).
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000"}

// WriteSVG writes the chart to w as a standalone SVG document.
func (c Chart) WriteSVG(w io.Writer) error {
	body := &strings.Builder{}
	s := &svg{w: body}
	colours := c.colours()
	y := margin
	if c.Title != "" {
		s.text(margin, y+16, "title", "start", c.Title)
		y += 24
	}
	if c.Subtitle != "" {
		s.text(margin, y+14, "subtitle", "start", c.Subtitle)
		y += 22
	}
	if len(c.Bars) > 0 {
		y = c.drawBars(s, y+10, colours)
	}
	if len(c.Series) > 0 {
		y = c.drawLegend(s, y+10, colours)
		y = c.drawLines(s, y+6, "oldest-age", "Oldest buffered row's age over time"+c.maxLossTitle(), colours,
			func(p Point) float64 { return float64(p.Oldest) }, float64(c.MaxLoss), fmtDurationTick)
		y = c.drawLines(s, y+10, "dirty-rows", "Dirty rows (buffered, not yet committed) over time", colours,
			func(p Point) float64 { return float64(p.Dirty) }, 0, fmtCountTick)
	}
	height := y + margin
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="13">
<style>
.title { font-size: 17px; font-weight: bold; }
.subtitle { fill: #444; }
.panel { font-size: 14px; font-weight: bold; }
.tick { fill: #555; font-size: 11px; }
.grid { stroke: #ddd; stroke-width: 1; }
.axis { stroke: #888; stroke-width: 1; }
.value { fill: #222; }
.maxloss { stroke: #C00; stroke-width: 1.5; stroke-dasharray: 6 4; }
.maxloss-label { fill: #C00; font-size: 12px; }
</style>
<rect width="100%%" height="100%%" fill="white"/>
`, width, height, width, height)
	bw.WriteString(body.String())
	bw.WriteString("</svg>\n")
	return bw.Flush()
}

// WriteFile writes the chart to the file at path, replacing it.
func (c Chart) WriteFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := c.WriteSVG(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (c Chart) maxLossTitle() string {
	if c.MaxLoss > 0 {
		return ", against max_loss (" + c.MaxLoss.String() + ")"
	}
	return ""
}

// colours maps each label (bar or series) to its colour: bars by position,
// then series whose label no bar has.
func (c Chart) colours() map[string]string {
	m := map[string]string{}
	next := 0
	assign := func(label string) {
		if _, ok := m[label]; !ok {
			m[label] = palette[next%len(palette)]
			next++
		}
	}
	for _, b := range c.Bars {
		assign(b.Label)
	}
	for _, s := range c.Series {
		assign(s.Label)
	}
	return m
}

// drawBars draws the throughput panel from y down and returns where it ends.
func (c Chart) drawBars(s *svg, y int, colours map[string]string) int {
	unit := c.Unit
	if unit == "" {
		unit = "per second"
	}
	s.text(margin, y+16, "panel", "start", "Throughput, "+unit+" (log scale)")
	y += panelTitleH
	lo, hi := logRange(c.Bars)
	x0, x1 := margin+barLabelW, width-margin-barValueW
	top := y
	bottom := y + len(c.Bars)*(barH+barGap)
	s.printf(`<g id="throughput">` + "\n")
	// Decade grid lines and their labels below the bars.
	for e := math.Log10(lo); e <= math.Log10(hi)+1e-9; e++ {
		x := float64(x0) + (e-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*float64(x1-x0)
		s.printf(`<line class="grid" x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>`+"\n", x, top-4, x, bottom)
		s.text(int(math.Round(x)), bottom+14, "tick", "middle", fmtCountTick(math.Pow(10, e)))
	}
	for i, b := range c.Bars {
		by := y + i*(barH+barGap)
		v := finite(b.Value)
		w := barWidth(v, lo, hi, float64(x1-x0))
		s.text(x0-8, by+barH/2+5, "label", "end", b.Label)
		s.printf(`<rect class="bar" data-label="%s" data-value="%s" x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n",
			attr(b.Label), strconv.FormatFloat(v, 'f', -1, 64), x0, by, w, barH, colours[b.Label])
		label := Count(v)
		if b.Note != "" {
			label += "  " + b.Note
		}
		s.text(x0+int(math.Ceil(w))+6, by+barH/2+5, "value", "start", label)
	}
	s.printf(`<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`+"\n", x0, top-4, x0, bottom)
	s.printf("</g>\n")
	return bottom + 20
}

// logRange is the decades the bars span: from the decade below the smallest
// positive value (so it still gets a bar) to the one at or above the largest.
func logRange(bars []Bar) (lo, hi float64) {
	minV, maxV := math.Inf(1), 0.0
	for _, b := range bars {
		if v := finite(b.Value); v > 0 {
			minV, maxV = min(minV, v), max(maxV, v)
		}
	}
	if maxV == 0 { // nothing positive: an empty axis from 1 to 10
		return 1, 10
	}
	lo = math.Pow(10, math.Floor(math.Log10(minV)-1e-9))
	hi = math.Pow(10, math.Ceil(math.Log10(maxV)))
	if hi <= lo {
		hi = lo * 10
	}
	return lo, hi
}

// barWidth is v's bar on the log axis [lo, hi] of span units; a positive
// value gets at least 2 units, so it is seen.
func barWidth(v, lo, hi, span float64) float64 {
	if v <= 0 {
		return 0
	}
	w := (math.Log10(v) - math.Log10(lo)) / (math.Log10(hi) - math.Log10(lo)) * span
	return math.Min(math.Max(w, 2), span)
}

// drawLegend writes one swatch per series and returns where it ends.
func (c Chart) drawLegend(s *svg, y int, colours map[string]string) int {
	s.printf(`<g id="legend">` + "\n")
	x := plotLeft
	for _, se := range c.Series {
		w := 28 + 7*len([]rune(se.Label))
		if x+w > plotRight && x > plotLeft {
			x = plotLeft
			y += legendRowH
		}
		s.printf(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", x, y+8, x+20, y+8, colours[se.Label])
		s.text(x+26, y+12, "legend", "start", se.Label)
		x += w + 16
	}
	s.printf("</g>\n")
	return y + legendRowH
}

// drawLines draws one time panel: each series' value(p) over time, and a
// dashed limit line at limit when it is > 0. It returns where the panel ends.
func (c Chart) drawLines(s *svg, y int, id, title string, colours map[string]string,
	value func(Point) float64, limit float64, tick func(float64) string) int {
	s.text(margin, y+16, "panel", "start", title)
	y += panelTitleH
	top, bottom := y, y+plotH
	var tMax time.Duration
	yMax := limit * 1.15
	for _, se := range c.Series {
		for _, p := range se.Points {
			tMax = max(tMax, p.At)
			yMax = max(yMax, finite(value(p)))
		}
	}
	if c.Span > 0 {
		tMax = c.Span
	}
	if tMax <= 0 {
		tMax = time.Second
	}
	yMax *= 1.05 // headroom: a line along the top stays visible
	yStep := niceStep(yMax, 6)
	yTop := math.Ceil(yMax/yStep) * yStep
	if yTop <= 0 {
		yTop = yStep
	}
	xStep := niceStep(tMax.Seconds(), 8)
	xTop := math.Ceil(tMax.Seconds()/xStep) * xStep
	px := func(t time.Duration) float64 {
		return plotLeft + min(t.Seconds()/xTop, 1)*float64(plotRight-plotLeft)
	}
	py := func(v float64) float64 { return float64(bottom) - finite(v)/yTop*plotH }

	s.printf(`<g id="%s">`+"\n", id)
	for i := 0; float64(i)*yStep <= yTop*(1+1e-9); i++ {
		v := float64(i) * yStep
		s.printf(`<line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`+"\n", plotLeft, py(v), plotRight, py(v))
		s.text(plotLeft-6, int(math.Round(py(v)))+4, "tick", "end", tick(v))
	}
	for i := 0; float64(i)*xStep <= xTop*(1+1e-9); i++ {
		sec := float64(i) * xStep
		x := px(time.Duration(sec * float64(time.Second)))
		s.printf(`<line class="grid" x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>`+"\n", x, top, x, bottom)
		s.text(int(math.Round(x)), bottom+15, "tick", "middle", strconv.FormatFloat(sec, 'f', -1, 64)+"s")
	}
	s.printf(`<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`+"\n", plotLeft, bottom, plotRight, bottom)
	s.printf(`<line class="axis" x1="%d" y1="%d" x2="%d" y2="%d"/>`+"\n", plotLeft, top, plotLeft, bottom)
	s.text((plotLeft+plotRight)/2, bottom+30, "tick", "middle", "time since the run started")
	for _, se := range c.Series {
		if len(se.Points) == 0 {
			continue
		}
		colour := colours[se.Label]
		var pts strings.Builder
		for i, p := range se.Points {
			if i > 0 {
				pts.WriteByte(' ')
			}
			fmt.Fprintf(&pts, "%.1f,%.1f", px(p.At), py(value(p)))
		}
		s.printf(`<polyline class="series" data-series="%s" points="%s" fill="none" stroke="%s" stroke-width="1.8" stroke-linejoin="round"/>`+"\n",
			attr(se.Label), pts.String(), colour)
		if len(se.Points) == 1 { // a line of one point is invisible
			p := se.Points[0]
			s.printf(`<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", px(p.At), py(value(p)), colour)
		}
	}
	if limit > 0 {
		ly := py(limit)
		s.printf(`<line id="%s-max-loss" class="maxloss" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`+"\n", id, plotLeft, ly, plotRight, ly)
		s.text(plotRight-4, int(math.Round(ly))-5, "maxloss-label", "end", "max_loss "+time.Duration(limit).String())
	}
	s.printf("</g>\n")
	return bottom + axisLabelH
}

// niceStep is a step of 1, 2 or 5 times a power of ten that cuts [0, span]
// into at most about n parts.
func niceStep(span float64, n int) float64 {
	span = finite(span)
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// finite is v, or 0 when v is NaN, infinite or negative: nothing the chart
// draws may be NaN.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0
	}
	return v
}

// fmtCountTick labels a count axis: 0, 500, 2k, 1.5M.
func fmtCountTick(v float64) string {
	for _, u := range []struct {
		div    float64
		suffix string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if v >= u.div {
			return strconv.FormatFloat(v/u.div, 'f', -1, 64) + u.suffix
		}
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// fmtDurationTick labels a duration axis given in nanoseconds.
func fmtDurationTick(v float64) string {
	if v == 0 {
		return "0"
	}
	return time.Duration(v).Round(time.Microsecond).String()
}

// Count formats v rounded to an integer with thousands separators: 1,234,567.
func Count(v float64) string {
	v = math.Round(v)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	s := strconv.FormatFloat(math.Abs(v), 'f', 0, 64)
	var b strings.Builder
	if v < 0 {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// svg writes elements into the document body.
type svg struct{ w io.Writer }

func (s *svg) printf(format string, args ...any) { fmt.Fprintf(s.w, format, args...) }

// text writes a text element with its content escaped.
func (s *svg) text(x, y int, class, anchor, content string) {
	s.printf(`<text class="%s" x="%d" y="%d" text-anchor="%s">%s</text>`+"\n", class, x, y, anchor, escape(content))
}

// escape makes s safe as XML character data.
func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s)) //nolint:errcheck // a strings.Builder does not fail
	return b.String()
}

// attr makes s safe inside a double-quoted attribute.
func attr(s string) string { return escape(s) }
