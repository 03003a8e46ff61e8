package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestRun runs the example briefly: both runs print progress lines, the
// checks pass, and the chart is an SVG with both runs in it.
func TestRun(t *testing.T) {
	svg := filepath.Join(t.TempDir(), "pageviews.svg")
	var out bytes.Buffer
	o := options{pages: 50, goroutines: 2, duration: 700 * time.Millisecond, maxLoss: 300 * time.Millisecond, svg: svg}
	if err := run(context.Background(), o, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, label := range []string{"direct", "write-back"} {
		if !regexp.MustCompile(`(?m)^` + label + ` +[0-9.]+s +[0-9,]+ writes/s +dirty rows`).MatchString(text) {
			t.Errorf("no progress line for the %s run in:\n%s", label, text)
		}
	}
	if !regexp.MustCompile(`(?m)^write-back +[0-9.]+s +[0-9,]+ writes/s +dirty rows +[0-9,]+ +oldest +[0-9.]+m?s$`).MatchString(text) {
		t.Errorf("the write-back run's progress lines lack the dirty rows and oldest age:\n%s", text)
	}
	for _, want := range []string{"check direct:     SUM(views)", "check write-back: SUM(views) after Flush", "chart: " + svg} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in:\n%s", want, text)
		}
	}
	if strings.Contains(text, "MISMATCH") {
		t.Errorf("a check failed:\n%s", text)
	}
	data, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		XMLName xml.Name
	}
	if err := xml.Unmarshal(data, &doc); err != nil || doc.XMLName.Local != "svg" {
		t.Fatalf("the chart is not an SVG document: %v, root %v", err, doc.XMLName)
	}
	for _, want := range []string{`data-label="direct"`, `data-label="write-back"`, `data-series="write-back"`, "max_loss 300ms"} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("the chart lacks %s", want)
		}
	}
}
