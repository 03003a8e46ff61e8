package benchchart

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Counter counts acknowledged writes from many goroutines without making
// them share a cache line: each adds to its own slot, and Load sums them.
type Counter struct{ slots []paddedCount }

// paddedCount fills a cache line, so neighbouring slots do not contend.
type paddedCount struct {
	n atomic.Int64
	_ [56]byte
}

// NewCounter returns a Counter with one slot per goroutine.
func NewCounter(goroutines int) *Counter {
	return &Counter{slots: make([]paddedCount, max(goroutines, 1))}
}

// Add counts one write of goroutine g (0 ≤ g < goroutines).
func (c *Counter) Add(g int) { c.slots[g].n.Add(1) }

// Load is the writes counted so far.
func (c *Counter) Load() int64 {
	var n int64
	for i := range c.slots {
		n += c.slots[i].n.Load()
	}
	return n
}

// Sample is one reading of a run in progress.
type Sample struct {
	At       time.Duration // since the monitor started
	Writes   int64         // acknowledged so far
	Buffered bool          // whether Dirty and Oldest were read (write-back runs)
	Dirty    int
	Oldest   time.Duration
}

// BufferFunc reads a write-back run's buffer: its dirty rows and the age of
// the oldest; ok is false when they could not be read.
type BufferFunc func() (dirty int, oldest time.Duration, ok bool)

// Monitor samples a run while it goes and prints a progress line every
// PrintEvery: the mode, the writes per second since the last line, and for
// write-back runs the dirty rows and the oldest age.
type Monitor struct {
	Label      string
	Out        io.Writer // progress lines; nil prints none
	Terminal   bool      // rewrite one line with \r instead of printing one a second
	Writes     func() int64
	Buffer     BufferFunc    // nil for runs without a buffer (direct)
	SampleTick time.Duration // how often to sample (default 100ms)
	PrintEvery time.Duration // how often to print (default 1s)
}

// Running is a started Monitor.
type Running struct {
	m     Monitor
	start time.Time
	stop  chan struct{}
	done  chan struct{}
	// Written by the sampling goroutine only; Stop uses them after it ended.
	samples    []Sample
	printed    int // length of the last line written with \r
	lastPrint  time.Time
	lastWrites int64 // the writes at lastPrint
	lines      int   // progress lines printed
}

// Start begins sampling; Stop ends it.
func (m Monitor) Start() *Running {
	if m.SampleTick <= 0 {
		m.SampleTick = 100 * time.Millisecond
	}
	if m.PrintEvery <= 0 {
		m.PrintEvery = time.Second
	}
	now := time.Now()
	r := &Running{m: m, start: now, lastPrint: now, stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r
}

func (r *Running) loop() {
	defer close(r.done)
	tick := time.NewTicker(r.m.SampleTick)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
			now, s := r.read()
			r.samples = append(r.samples, s)
			if now.Sub(r.lastPrint) >= r.m.PrintEvery-r.m.SampleTick/2 {
				r.print(now, s)
			}
		}
	}
}

// read takes one sample and says when: after the reads, not at the tick,
// which on a busy machine may be received late, or the reads may wait.
func (r *Running) read() (time.Time, Sample) {
	var s Sample
	if r.m.Writes != nil {
		s.Writes = r.m.Writes()
	}
	if r.m.Buffer != nil {
		s.Dirty, s.Oldest, s.Buffered = r.m.Buffer()
	}
	now := time.Now()
	s.At = now.Sub(r.start)
	return now, s
}

// print writes the progress line for s, taken at now: the writes per
// second since the last line.
func (r *Running) print(now time.Time, s Sample) {
	rate := float64(s.Writes-r.lastWrites) / now.Sub(r.lastPrint).Seconds()
	r.lastPrint, r.lastWrites = now, s.Writes
	r.lines++
	if r.m.Out == nil {
		return
	}
	dirty, oldest := "-", "-"
	if s.Buffered {
		dirty = Count(float64(s.Dirty))
		oldest = s.Oldest.Round(time.Millisecond).String()
	}
	line := fmt.Sprintf("%-30s %5.1fs %12s writes/s   dirty rows %7s   oldest %7s",
		r.m.Label, s.At.Seconds(), Count(rate), dirty, oldest)
	if !r.m.Terminal {
		fmt.Fprintln(r.m.Out, line)
		return
	}
	pad := max(r.printed-len(line), 0)
	r.printed = len(line)
	fmt.Fprint(r.m.Out, "\r"+line+strings.Repeat(" ", pad))
}

// Stop ends sampling, takes a last sample and returns the samples. It
// prints a last progress line when the last one is half a PrintEvery old or
// more (a run shorter than PrintEvery still gets one); on a terminal it then
// ends the line, so what is printed next starts on a line of its own. Call
// it once.
func (r *Running) Stop() []Sample {
	close(r.stop)
	<-r.done
	now, s := r.read()
	r.samples = append(r.samples, s)
	if r.lines == 0 || now.Sub(r.lastPrint) >= r.m.PrintEvery/2 {
		r.print(now, s)
	}
	if r.m.Terminal && r.printed > 0 && r.m.Out != nil {
		fmt.Fprintln(r.m.Out)
	}
	return r.samples
}

// Points are the samples that read a buffer, as a chart series' points.
func Points(samples []Sample) []Point {
	var pts []Point
	for _, s := range samples {
		if s.Buffered {
			pts = append(pts, Point{At: s.At, Dirty: s.Dirty, Oldest: s.Oldest})
		}
	}
	return pts
}

// MaxOldest is the largest oldest age among the samples.
func MaxOldest(samples []Sample) time.Duration {
	var m time.Duration
	for _, s := range samples {
		m = max(m, s.Oldest)
	}
	return m
}

// IsTerminal reports whether w is a terminal (a character device), where a
// progress line can be rewritten in place with \r.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
