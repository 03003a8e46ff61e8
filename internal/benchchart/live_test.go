package benchchart

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a strings.Builder safe for the monitor's goroutine and
// the test reading it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// monitorUntil runs m until it has printed lines progress lines (counted by
// their "writes/s"), and returns its samples and output.
func monitorUntil(t *testing.T, m Monitor, lines int) ([]Sample, string) {
	t.Helper()
	out := &lockedBuffer{}
	m.Out = out
	r := m.Start()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(out.String(), "writes/s") < lines {
		if time.Now().After(deadline) {
			r.Stop()
			t.Fatalf("no %d progress lines in 30s: %q", lines, out.String())
		}
		time.Sleep(5 * time.Millisecond) // polling the output: the monitor offers no signal for a printed line
	}
	return r.Stop(), out.String()
}

func TestMonitorPrintsLinesAndSamples(t *testing.T) {
	c := NewCounter(3)
	stopWriting := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopWriting:
					return
				default:
					c.Add(g)
				}
			}
		}()
	}
	m := Monitor{Label: "memory", Writes: c.Load, SampleTick: 10 * time.Millisecond, PrintEvery: 50 * time.Millisecond,
		Buffer: func() (int, time.Duration, bool) { return 42, 300 * time.Millisecond, true }}
	samples, out := monitorUntil(t, m, 2)
	close(stopWriting)
	wg.Wait()

	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 2 || strings.Contains(out, "\r") {
		t.Fatalf("want plain lines (not a terminal), got %q", out)
	}
	for _, l := range lines {
		for _, want := range []string{"memory", "writes/s", "dirty rows      42", "oldest   300ms"} {
			if !strings.Contains(l, want) {
				t.Errorf("line %q lacks %q", l, want)
			}
		}
	}
	if len(samples) < 2 {
		t.Fatalf("%d samples", len(samples))
	}
	for i, s := range samples {
		if !s.Buffered || s.Dirty != 42 || s.Oldest != 300*time.Millisecond {
			t.Errorf("sample %d = %+v", i, s)
		}
		if i > 0 && (s.At <= samples[i-1].At || s.Writes < samples[i-1].Writes) {
			t.Errorf("sample %d (%+v) goes back from %+v", i, s, samples[i-1])
		}
	}
	if pts := Points(samples); len(pts) != len(samples) || pts[0].Dirty != 42 {
		t.Errorf("Points = %+v", pts)
	}
	if got := MaxOldest(samples); got != 300*time.Millisecond {
		t.Errorf("MaxOldest = %s", got)
	}
	if total := c.Load(); total < samples[len(samples)-1].Writes {
		t.Errorf("counter %d below the last sample's %d", total, samples[len(samples)-1].Writes)
	}
}

func TestMonitorTerminalRewritesOneLine(t *testing.T) {
	m := Monitor{Label: "direct", Terminal: true, Writes: func() int64 { return 7 }, SampleTick: 5 * time.Millisecond, PrintEvery: 20 * time.Millisecond}
	samples, out := monitorUntil(t, m, 2)
	if strings.Count(out, "\r") < 2 || !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Errorf("want lines rewritten with \\r and one final newline, got %q", out)
	}
	if !strings.Contains(out, "dirty rows       -   oldest       -") {
		t.Errorf("a run without a buffer should print dashes: %q", out)
	}
	if len(Points(samples)) != 0 {
		t.Error("Points of a run without a buffer should be empty")
	}
}

func TestCounterSums(t *testing.T) {
	c := NewCounter(4)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				c.Add(g)
			}
		}()
	}
	wg.Wait()
	if got := c.Load(); got != 4000 {
		t.Errorf("Load = %d, want 4000", got)
	}
}

func TestMonitorShortRunPrintsOneLine(t *testing.T) {
	out := &lockedBuffer{}
	r := Monitor{Label: "short", Out: out, Writes: func() int64 { return 3 }, PrintEvery: time.Hour}.Start()
	samples := r.Stop()
	if got := strings.Count(out.String(), "writes/s"); got != 1 {
		t.Errorf("a run shorter than PrintEvery printed %d lines, want 1: %q", got, out.String())
	}
	if len(samples) != 1 || samples[0].Writes != 3 {
		t.Errorf("samples %+v, want the one Stop takes", samples)
	}
}
