package journal

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// payload is the deterministic content of the i-th record written by a
// test (lengths vary so that offsets are not all alike).
func payload(i uint64) []byte {
	return []byte(fmt.Sprintf("record-%d-%s", i, strings.Repeat("x", int(i%7))))
}

// logBuf is a concurrency-safe log sink whose text tests can search.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger() (*slog.Logger, *logBuf) {
	lb := &logBuf{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// quietOpts returns options that log into a buffer instead of stderr.
func quietOpts(o Options) Options {
	if o.Logger == nil {
		o.Logger, _ = newLogger()
	}
	return o
}

func mustOpen(t testing.TB, dir string, o Options) *Journal {
	t.Helper()
	j, err := Open(dir, quietOpts(o))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return j
}

// appendN appends records payload(LastLSN+1) .. payload(LastLSN+n).
func appendN(t testing.TB, j *Journal, n int) {
	t.Helper()
	for range n {
		want := j.LastLSN() + 1
		lsn, err := j.Append(payload(want))
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if lsn != want {
			t.Fatalf("Append got LSN %d, want %d", lsn, want)
		}
	}
}

type rec struct {
	lsn uint64
	b   []byte
}

func replayAll(t testing.TB, j *Journal, after uint64) []rec {
	t.Helper()
	var out []rec
	if err := j.Replay(after, func(lsn uint64, b []byte) error {
		out = append(out, rec{lsn, b})
		return nil
	}); err != nil {
		t.Fatalf("Replay(%d): %v", after, err)
	}
	return out
}

// checkRecords asserts recs are exactly payload(from) .. payload(to)
// (none if to < from).
func checkRecords(t testing.TB, recs []rec, from, to uint64) {
	t.Helper()
	want := 0
	if to >= from {
		want = int(to - from + 1)
	}
	if len(recs) != want {
		t.Fatalf("got %d records (first %v), want %d (%d..%d)", len(recs), firstLSN(recs), want, from, to)
	}
	for i, r := range recs {
		lsn := from + uint64(i)
		if r.lsn != lsn || !bytes.Equal(r.b, payload(lsn)) {
			t.Fatalf("record %d: got LSN %d %q, want LSN %d %q", i, r.lsn, r.b, lsn, payload(lsn))
		}
	}
}

func firstLSN(recs []rec) any {
	if len(recs) == 0 {
		return "none"
	}
	return recs[0].lsn
}

// segFiles lists the segment files of dir in LSN order.
func segFiles(t testing.TB, dir string) []segment {
	t.Helper()
	segs, err := listSegments(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range segs {
		fi, err := os.Stat(segs[i].path)
		if err != nil {
			t.Fatal(err)
		}
		segs[i].size = fi.Size()
	}
	return segs
}

// recordOffsets returns the start offset of every record in a segment file.
func recordOffsets(t testing.TB, path string, first uint64) []int64 {
	t.Helper()
	r, err := openSegReader(path, first)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var offs []int64
	for {
		off := r.off
		_, _, err := r.nextRecord()
		if err == io.EOF {
			return offs
		}
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
}

// copyDir copies the segment files of src into a new temporary directory.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == lockName {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// fakeClock is a settable clock for lag tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// faultAt returns a Fault hook that fails the nth call (1-based) at point
// and counts the calls.
func faultAt(point string, nth int, calls *int) func(string) error {
	var mu sync.Mutex
	return func(p string) error {
		if p != point {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		*calls++
		if *calls == nth {
			return errInjected
		}
		return nil
	}
}

var errInjected = fmt.Errorf("injected fault")
