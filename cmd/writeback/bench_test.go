package main

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// svgNode is a parsed SVG element.
type svgNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []svgNode  `xml:",any"`
}

func (n svgNode) walk(fn func(svgNode)) {
	fn(n)
	for _, c := range n.Children {
		c.walk(fn)
	}
}

func (n svgNode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func TestBenchSQLite(t *testing.T) {
	svg := filepath.Join(t.TempDir(), "bench.svg")
	var stdout, stderr bytes.Buffer
	code := run([]string{"bench", "-duration", "2s", "-goroutines", "2", "-keys", "100", "-svg", svg}, &stdout, &stderr)
	out := stdout.String()
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr.String())
	}
	modes := []string{"direct", "ack: memory", "memory + journal (everysec)", "ack: disk (fsync always)"}
	for _, m := range modes {
		// A table row: the mode, then the writes, writes/s, ratio, row writes and two latencies.
		row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(m) + ` +[0-9,]+ +[0-9,]+ +[0-9.]+× +[0-9,]+ +\S+ +\S+$`)
		if !row.MatchString(out) {
			t.Errorf("no table row for %q in:\n%s", m, out)
		}
		check := regexp.MustCompile(`(?m)^check ` + regexp.QuoteMeta(m) + `: +SUM\(n\)( after Flush)? ([0-9,]+) = acknowledged ([0-9,]+): OK$`)
		if mm := check.FindStringSubmatch(out); mm == nil {
			t.Errorf("no passing check line for %q in:\n%s", m, out)
		} else if mm[2] != mm[3] || mm[2] == "0" {
			t.Errorf("check %q: sum %s, acknowledged %s", m, mm[2], mm[3])
		}
		// Progress lines are plain lines here (not a terminal).
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(m) + ` +[0-9.]+s +[0-9,]+ writes/s +dirty rows`).MatchString(out) {
			t.Errorf("no progress line for %q", m)
		}
	}
	if strings.Contains(out, "synchronous_commit") {
		t.Error("the synchronous_commit=off mode ran on SQLite")
	}
	if strings.Contains(out, "\r") {
		t.Error("progress written with \\r to a stdout that is not a terminal")
	}

	data, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	var root svgNode
	if err := xml.Unmarshal(data, &root); err != nil {
		t.Fatalf("the chart is not valid XML: %v", err)
	}
	var bars, series []string
	var texts []string
	maxLoss := 0
	root.walk(func(n svgNode) {
		switch {
		case n.XMLName.Local == "rect" && n.attr("class") == "bar":
			bars = append(bars, n.attr("data-label"))
		case n.XMLName.Local == "polyline":
			series = append(series, n.attr("data-series"))
		case n.XMLName.Local == "line" && n.attr("class") == "maxloss":
			maxLoss++
		case n.XMLName.Local == "text":
			texts = append(texts, n.Text)
		}
	})
	if got, want := strings.Join(bars, "|"), strings.Join(modes, "|"); got != want {
		t.Errorf("bars %q, want %q", got, want)
	}
	// The three write-back modes, on the oldest-age and the dirty-rows panels.
	if got, want := strings.Join(series, "|"), strings.Join(append(modes[1:], modes[1:]...), "|"); got != want {
		t.Errorf("series %q, want %q", got, want)
	}
	if maxLoss != 1 {
		t.Errorf("%d max_loss lines, want 1", maxLoss)
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{"Throughput, writes/s (log scale)", "max_loss 1s", "Dirty rows", "× direct"} {
		if !strings.Contains(all, want) {
			t.Errorf("the chart has no text %q", want)
		}
	}
	if !strings.Contains(out, "chart: "+svg) {
		t.Errorf("the output does not say where the chart went:\n%s", out)
	}
}

func TestBenchUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"bench", "-h"}, &stdout, &stderr); code != exitOK {
		t.Errorf("-h: exit %d, want 0", code)
	}
	if !strings.Contains(stdout.String(), "usage: writeback bench") || !strings.Contains(stdout.String(), "-duration") {
		t.Errorf("-h printed %q", stdout.String())
	}
	for _, args := range [][]string{
		{"-nosuchflag"},
		{"-duration", "soon"},
		{"-duration", "0s"},
		{"-goroutines", "0"},
		{"-keys", "-3"},
		{"-db", "oracle"},
		{"extra"},
	} {
		stdout.Reset()
		stderr.Reset()
		if code := run(append([]string{"bench"}, args...), &stdout, &stderr); code != exitUsage {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if stderr.Len() == 0 {
			t.Errorf("%q: nothing on stderr", args)
		}
	}
}

func TestBenchPostgresUnreachable(t *testing.T) {
	// A socket directory with no server in it: the connection is refused at once.
	dir := t.TempDir()
	dsn := "host=" + dir + " dbname=nothing password=secret connect_timeout=2"
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := run([]string{"bench", "-db", "postgres", "-dsn", dsn, "-duration", "1s"}, &stdout, &stderr)
	if code != exitUsage {
		t.Fatalf("exit %d, want 2; stderr %q", code, stderr.String())
	}
	msg := stderr.String()
	if !strings.Contains(msg, "cannot connect to postgres") || !strings.Contains(msg, "host "+dir) || !strings.Contains(msg, "database nothing") {
		t.Errorf("message %q does not say it cannot connect, and to what", msg)
	}
	if strings.Contains(msg, "secret") {
		t.Errorf("message %q shows the password", msg)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("took %s to give up", el)
	}
}

func TestBenchPostgres(t *testing.T) {
	dsn := os.Getenv("WRITEBACK_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("WRITEBACK_TEST_POSTGRES not set")
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"bench", "-db", "postgres", "-dsn", dsn, "-duration", "1s", "-goroutines", "2", "-keys", "50"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, m := range []string{"direct", "synchronous_commit=off", "ack: memory", "memory + journal (everysec)", "ack: disk (fsync always)"} {
		if !regexp.MustCompile(`(?m)^check ` + regexp.QuoteMeta(m) + `: .*: OK$`).MatchString(out) {
			t.Errorf("no passing check for %q in:\n%s", m, out)
		}
	}
}

func TestAsyncDSN(t *testing.T) {
	for in, want := range map[string]string{
		"":                                    "synchronous_commit=off",
		"host=/tmp dbname=x":                  "host=/tmp dbname=x synchronous_commit=off",
		"postgres://u@h/db":                   "postgres://u@h/db?synchronous_commit=off",
		"postgresql://u@h/db?sslmode=disable": "postgresql://u@h/db?sslmode=disable&synchronous_commit=off",
	} {
		if got := asyncDSN(in); got != want {
			t.Errorf("asyncDSN(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLatencyHist(t *testing.T) {
	var h latencyHist
	if _, ok := h.quantile(0.5); ok {
		t.Error("an empty histogram gave a quantile")
	}
	// 1..1000 µs, once each: the p50 is 500 µs and the p99 990 µs, within the buckets' 3%.
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	var other latencyHist
	other.record(-time.Second) // a clock step back counts as 0, not a panic
	h.merge(&other)
	for q, want := range map[float64]time.Duration{0.5: 500 * time.Microsecond, 0.99: 990 * time.Microsecond} {
		got, ok := h.quantile(q)
		if !ok || float64(got) < 0.97*float64(want) || float64(got) > 1.03*float64(want) {
			t.Errorf("quantile(%v) = %s, want %s ± 3%%", q, got, want)
		}
	}
	for _, v := range []uint64{0, 1, 31, 32, 33, 1 << 20, 1<<63 + 12345, ^uint64(0)} {
		i := bucketOf(v)
		if i < 0 || i >= latencyBuckets {
			t.Fatalf("bucketOf(%d) = %d, out of range", v, i)
		}
		if mid := bucketMid(i); v > 0 && (mid < float64(v)*0.96 || mid > float64(v)*1.04+1) {
			t.Errorf("bucketOf(%d) = %d, whose middle %.0f is more than 4%% away", v, i, mid)
		}
	}
}

func TestBenchChecksReportMismatch(t *testing.T) {
	good := &modeResult{mode: benchMode{label: "direct"}, acked: 10, sum: 10}
	lost := &modeResult{mode: benchMode{label: "ack: memory", buffered: true}, acked: 10, sum: 9}
	lost.stats.Buffered = 10
	var out bytes.Buffer
	if printBenchChecks(&out, []*modeResult{good, lost}) {
		t.Fatalf("a sum one short of the acknowledged writes passed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "check direct:") || !strings.Contains(out.String(), "SUM(n) 10 = acknowledged 10: OK") {
		t.Errorf("the passing mode's line is missing:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "SUM(n) after Flush 9 != acknowledged 10: FAILED: SUM(n) differs by -1") {
		t.Errorf("the failing mode's line is missing:\n%s", out.String())
	}
	out.Reset()
	if !printBenchChecks(&out, []*modeResult{good}) {
		t.Errorf("matching sums failed:\n%s", out.String())
	}
}
