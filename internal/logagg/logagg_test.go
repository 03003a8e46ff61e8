package logagg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock runs AfterFunc's functions when Advance passes their time, in
// the caller's goroutine.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

// pending is the number of timers not yet fired or stopped.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}

// Advance moves the clock by d and runs the timers that are due, in order.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.stopped && !t.at.After(c.now) {
			t.stopped = true
			due = append(due, t)
		}
	}
	c.mu.Unlock()
	slices.SortFunc(due, func(a, b *fakeTimer) int { return a.at.Compare(b.at) })
	for _, t := range due {
		t.f()
	}
}

// logBuffer is a slog JSON handler's output, safe for concurrent writers.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// line is one logged line, decoded.
type line struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
	Table string `json:"table"`
	Rows  int    `json:"rows"`
	Keys  []any  `json:"keys"`
	Err   string `json:"err"`
}

func (b *logBuffer) lines(t *testing.T) []line {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []line
	for _, l := range bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var ln line
		if err := json.Unmarshal(l, &ln); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, ln)
	}
	return out
}

func newTestAggregator(clock Clock) (*Aggregator, *logBuffer) {
	lb := &logBuffer{}
	log := slog.New(slog.NewJSONHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return New(Config{Log: log, Clock: clock}), lb
}

var (
	noMatch = Kind{slog.LevelWarn, "no match"}
	refused = Kind{slog.LevelError, "refused"}
)

func TestBurstIsOneLine(t *testing.T) {
	clock := newFakeClock()
	a, lb := newTestAggregator(clock)
	errFirst := errors.New("first")
	for i := range 1000 {
		var err error
		if i == 0 {
			err = errFirst
		} else if i == 1 {
			err = errors.New("second")
		}
		a.Add(noMatch, "counters", i, err)
	}
	if got := lb.lines(t); len(got) != 0 {
		t.Fatalf("logged before the window ended: %+v", got)
	}
	clock.Advance(DefaultWindow - time.Nanosecond)
	if got := lb.lines(t); len(got) != 0 {
		t.Fatalf("logged before the window ended: %+v", got)
	}
	clock.Advance(time.Nanosecond)
	got := lb.lines(t)
	if len(got) != 1 {
		t.Fatalf("got %d lines, want 1: %+v", len(got), got)
	}
	l := got[0]
	if l.Level != "WARN" || l.Msg != "no match" || l.Table != "counters" || l.Rows != 1000 || l.Err != "first" {
		t.Errorf("line = %+v", l)
	}
	if want := []any{0.0, 1.0, 2.0, 3.0, 4.0}; !slices.Equal(l.Keys, want) {
		t.Errorf("keys = %v, want %v", l.Keys, want)
	}
	a.Close()
	if got := lb.lines(t); len(got) != 1 {
		t.Errorf("Close logged again: %+v", got[1:])
	}
}

func TestGroupsByTableAndKind(t *testing.T) {
	clock := newFakeClock()
	a, lb := newTestAggregator(clock)
	for i := range 10 {
		a.Add(noMatch, "a", i, nil)
		a.Add(noMatch, "b", i, nil)
		if i%2 == 0 {
			a.Add(refused, "a", i, fmt.Errorf("row %d", i))
		}
	}
	clock.Advance(DefaultWindow)
	got := lb.lines(t)
	rows := map[string]int{}
	for _, l := range got {
		rows[l.Msg+"/"+l.Table] += l.Rows
		if l.Msg == "no match" && l.Err != "" {
			t.Errorf("no-match line carries err %q", l.Err)
		}
		if l.Msg == "refused" && (l.Err != "row 0" || l.Level != "ERROR") {
			t.Errorf("refused line = %+v", l)
		}
	}
	want := map[string]int{"no match/a": 10, "no match/b": 10, "refused/a": 5}
	if len(got) != len(want) || fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("lines = %+v, want one per table and kind with rows %v", got, want)
	}
}

// A steady stream logs one line a window, and every event is counted.
func TestSteadyStreamOneLinePerWindow(t *testing.T) {
	clock := newFakeClock()
	a, lb := newTestAggregator(clock)
	const events = 50 // one every 100ms: 5 s
	for i := range events {
		a.Add(noMatch, "t", i, nil)
		clock.Advance(100 * time.Millisecond)
	}
	a.Close()
	got := lb.lines(t)
	total := 0
	for _, l := range got {
		total += l.Rows
	}
	if total != events {
		t.Errorf("lines count %d events, want %d", total, events)
	}
	if len(got) != 5 {
		t.Errorf("%d lines for 5 s of events, want 5: %+v", len(got), got)
	}
}

func TestCloseLogsPendingAndLaterEventsAtOnce(t *testing.T) {
	clock := newFakeClock()
	a, lb := newTestAggregator(clock)
	a.Add(refused, "t2", []any{int64(2), "x"}, errors.New("boom"))
	a.Add(noMatch, "t1", []any{int64(1)}, nil)
	a.Add(noMatch, "t1", []any{int64(3)}, nil)
	a.Close()
	got := lb.lines(t)
	if len(got) != 2 || got[0].Table != "t1" || got[0].Rows != 2 || got[1].Table != "t2" || got[1].Rows != 1 || got[1].Err != "boom" {
		t.Fatalf("lines at Close = %+v", got)
	}
	if n := clock.pending(); n != 0 {
		t.Errorf("%d timers left running after Close", n)
	}
	clock.Advance(time.Hour) // stopped timers log nothing
	a.Add(noMatch, "t1", []any{int64(4)}, nil)
	got = lb.lines(t)
	if len(got) != 3 || got[2].Rows != 1 || fmt.Sprint(got[2].Keys) != "[[4]]" {
		t.Errorf("an event after Close: lines = %+v", got)
	}
	a.Close() // a second Close is harmless
	if got := lb.lines(t); len(got) != 3 {
		t.Errorf("second Close logged: %+v", got[3:])
	}
}

// Events from many goroutines, with real timers of a short window firing
// meanwhile: after Close every event has been counted once.
func TestConcurrentAddsAllCounted(t *testing.T) {
	lb := &logBuffer{}
	a := New(Config{Log: slog.New(slog.NewJSONHandler(lb, nil)), Window: time.Millisecond})
	const goroutines, each = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				a.Add(noMatch, fmt.Sprint("t", g%3), i, nil)
			}
		}()
	}
	wg.Wait()
	a.Close()
	total := 0
	for _, l := range lb.lines(t) {
		total += l.Rows
		if len(l.Keys) > DefaultMaxKeys {
			t.Errorf("line lists %d keys, more than %d", len(l.Keys), DefaultMaxKeys)
		}
	}
	if total != goroutines*each {
		t.Errorf("lines count %d events, want %d", total, goroutines*each)
	}
}
