package benchchart

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// node is a parsed XML element, enough to look for the chart's parts.
type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []node     `xml:",any"`
}

func (n node) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// walk calls fn for n and every element below it.
func (n node) walk(fn func(node)) {
	fn(n)
	for _, c := range n.Children {
		c.walk(fn)
	}
}

// render writes c and parses it back, failing the test if it is not XML or
// holds a NaN or an infinity.
func render(t *testing.T, c Chart) (node, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := c.WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	var root node
	if err := xml.Unmarshal(buf.Bytes(), &root); err != nil {
		t.Fatalf("not valid XML: %v\n%s", err, out)
	}
	if root.XMLName.Local != "svg" || root.XMLName.Space != "http://www.w3.org/2000/svg" {
		t.Fatalf("root element %v, want svg in the SVG namespace", root.XMLName)
	}
	// Every numeric attribute parses as a finite number.
	root.walk(func(n node) {
		for _, a := range n.Attrs {
			switch a.Name.Local {
			case "x", "y", "x1", "x2", "y1", "y2", "width", "height", "cx", "cy", "r":
				if a.Value == "100%" {
					continue
				}
				v, err := strconv.ParseFloat(a.Value, 64)
				if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
					t.Errorf("<%s %s=%q>: not a finite number", n.XMLName.Local, a.Name.Local, a.Value)
				}
			case "points":
				for _, xy := range strings.Fields(a.Value) {
					for _, f := range strings.Split(xy, ",") {
						if v, err := strconv.ParseFloat(f, 64); err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
							t.Errorf("points %q: %q is not a finite number", a.Value, f)
						}
					}
				}
			}
		}
	})
	for _, bad := range []string{"NaN", "Inf"} {
		if strings.Contains(out, bad) {
			t.Errorf("the SVG contains %q", bad)
		}
	}
	return root, out
}

// texts is every text element's content.
func texts(root node) []string {
	var ts []string
	root.walk(func(n node) {
		if n.XMLName.Local == "text" {
			ts = append(ts, n.Text)
		}
	})
	return ts
}

func hasText(root node, want string) bool {
	for _, s := range texts(root) {
		if strings.Contains(s, want) {
			return true
		}
	}
	return false
}

// barWidths maps each bar's label to its drawn width.
func barWidths(t *testing.T, root node) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	root.walk(func(n node) {
		if n.XMLName.Local == "rect" && n.attr("class") == "bar" {
			w, err := strconv.ParseFloat(n.attr("width"), 64)
			if err != nil {
				t.Fatalf("bar %q width %q: %v", n.attr("data-label"), n.attr("width"), err)
			}
			m[n.attr("data-label")] = w
		}
	})
	return m
}

func sampleChart() Chart {
	series := func(label string, peak time.Duration) Series {
		var s Series
		s.Label = label
		for i := range 40 {
			at := time.Duration(i+1) * 50 * time.Millisecond
			s.Points = append(s.Points, Point{At: at, Dirty: 10 * i, Oldest: at % peak})
		}
		return s
	}
	return Chart{
		Title:    "bench <sqlite> & co",
		Subtitle: `UPDATE "counters" SET n = n + 1`,
		Unit:     "writes/s",
		Bars: []Bar{
			{Label: "direct", Value: 20_000},
			{Label: "ack: memory", Value: 2_000_000, Note: "(100.0× direct)"},
			{Label: "ack: disk", Value: 35_000},
		},
		Series:  []Series{series("ack: memory", 900*time.Millisecond), series("ack: disk", 600*time.Millisecond)},
		MaxLoss: time.Second,
	}
}

func TestChartIsValidSVGWithEveryPart(t *testing.T) {
	c := sampleChart()
	root, out := render(t, c)
	for _, want := range []string{"bench <sqlite> & co", `UPDATE "counters" SET n = n + 1`, "Throughput, writes/s (log scale)",
		"direct", "ack: memory", "ack: disk", "2,000,000  (100.0× direct)", "20,000", "max_loss 1s",
		"Oldest buffered row's age", "Dirty rows", "10k", "1M"} {
		if !hasText(root, want) {
			t.Errorf("no text %q in the chart; texts: %q", want, texts(root))
		}
	}
	if !strings.Contains(out, "&lt;sqlite&gt; &amp; co") {
		t.Error("the title is not escaped")
	}
	var series []string
	var maxLoss []node
	root.walk(func(n node) {
		if n.XMLName.Local == "polyline" {
			series = append(series, n.attr("data-series"))
			if got := len(strings.Fields(n.attr("points"))); got != 40 {
				t.Errorf("series %q has %d points, want 40", n.attr("data-series"), got)
			}
		}
		if n.XMLName.Local == "line" && n.attr("class") == "maxloss" {
			maxLoss = append(maxLoss, n)
		}
	})
	// Each series is drawn twice: oldest age, then dirty rows.
	if want := []string{"ack: memory", "ack: disk", "ack: memory", "ack: disk"}; strings.Join(series, "|") != strings.Join(want, "|") {
		t.Errorf("polylines %q, want %q", series, want)
	}
	if len(maxLoss) != 1 || maxLoss[0].attr("y1") != maxLoss[0].attr("y2") {
		t.Fatalf("want one horizontal max_loss line, got %+v", maxLoss)
	}
	// The max_loss line lies above every point of the oldest-age lines
	// (smaller y), since every age in the sample is below max_loss.
	ly, _ := strconv.ParseFloat(maxLoss[0].attr("y1"), 64)
	root.walk(func(n node) {
		if n.XMLName.Local != "g" || n.attr("id") != "oldest-age" {
			return
		}
		for _, c := range n.Children {
			if c.XMLName.Local != "polyline" {
				continue
			}
			for _, xy := range strings.Fields(c.attr("points")) {
				y, _ := strconv.ParseFloat(strings.Split(xy, ",")[1], 64)
				if y <= ly {
					t.Errorf("series %q point %s is at or above the max_loss line (y %.1f)", c.attr("data-series"), xy, ly)
				}
			}
		}
	})
}

func TestChartBarsScaleWithValues(t *testing.T) {
	c := Chart{Bars: []Bar{{Label: "a", Value: 1000}, {Label: "b", Value: 10_000}, {Label: "c", Value: 100_000}, {Label: "d", Value: 5000}}}
	root, _ := render(t, c)
	w := barWidths(t, root)
	if len(w) != 4 {
		t.Fatalf("bars %v, want 4", w)
	}
	if !(w["a"] < w["d"] && w["d"] < w["b"] && w["b"] < w["c"]) {
		t.Errorf("bar widths %v do not grow with the values 1000 < 5000 < 10000 < 100000", w)
	}
	// Log scale: equal ratios, equal steps.
	if d1, d2 := w["b"]-w["a"], w["c"]-w["b"]; math.Abs(d1-d2) > 0.2 {
		t.Errorf("a decade is %.1f then %.1f units wide, want equal on a log scale", d1, d2)
	}
	if w["a"] <= 0 {
		t.Errorf("the smallest value has no visible bar (%v)", w["a"])
	}
}

func TestChartZeroAndOneSample(t *testing.T) {
	c := Chart{
		Bars:    []Bar{{Label: "zero", Value: 0}, {Label: "nan", Value: math.NaN()}, {Label: "inf", Value: math.Inf(1)}, {Label: "neg", Value: -5}},
		Series:  []Series{{Label: "one", Points: []Point{{At: 0, Dirty: 0, Oldest: 0}}}, {Label: "empty"}},
		MaxLoss: 0,
	}
	root, _ := render(t, c)
	for label, w := range barWidths(t, root) {
		if w != 0 {
			t.Errorf("bar %q of a value that is not a positive number has width %v, want 0", label, w)
		}
	}
	circles := 0
	root.walk(func(n node) {
		if n.XMLName.Local == "circle" {
			circles++
		}
		if n.XMLName.Local == "line" && n.attr("class") == "maxloss" {
			t.Error("a max_loss line without a max_loss")
		}
	})
	if circles != 2 { // the single point, on both time panels
		t.Errorf("%d markers for the one-point series, want 2", circles)
	}

	// One positive bar alone, and nothing at all, still draw.
	root, _ = render(t, Chart{Bars: []Bar{{Label: "only", Value: 1}}})
	if w := barWidths(t, root)["only"]; w <= 0 {
		t.Errorf("a lone bar of 1 has width %v", w)
	}
	render(t, Chart{})
	render(t, Chart{Series: []Series{{Label: "flat", Points: []Point{{At: time.Second}, {At: 2 * time.Second}}}}, MaxLoss: time.Second})
}

func TestChartWriteError(t *testing.T) {
	if err := sampleChart().WriteSVG(failingWriter{}); err == nil {
		t.Error("WriteSVG to a failing writer returned no error")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestCount(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567", -1500: "-1,500", math.NaN(): "-"} {
		if got := Count(v); got != want {
			t.Errorf("Count(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestChartWriteFile(t *testing.T) {
	path := t.TempDir() + "/c.svg"
	if err := sampleChart().WriteFile(path); err != nil {
		t.Fatal(err)
	}
	if err := sampleChart().WriteFile(t.TempDir() + "/no/such/dir/c.svg"); err == nil {
		t.Error("WriteFile into a missing directory returned no error")
	}
}
