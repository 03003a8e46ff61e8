package journal

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

func TestCompact(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{SegmentBytes: 120})
	appendN(t, j, 30)
	before := j.Stats()
	if err := j.Compact(10); err != nil {
		t.Fatal(err)
	}
	st := j.Stats()
	if st.FirstLSN > 11 || st.FirstLSN <= 1 || st.Segments >= before.Segments || st.Bytes >= before.Bytes {
		t.Fatalf("after Compact(10): %+v (before %+v)", st, before)
	}
	if st.Records != 30-st.FirstLSN+1 || st.Bytes != dirBytes(t, dir) || st.Segments != len(segFiles(t, dir)) {
		t.Fatalf("stats disagree with the files: %+v", st)
	}
	checkRecords(t, replayAll(t, j, 10), 11, 30)
	checkRecords(t, replayAll(t, j, 0), st.FirstLSN, 30)
	if err := j.Compact(5); err != nil { // already gone: nothing to do
		t.Fatal(err)
	}
	j.Close()

	j = mustOpen(t, dir, Options{SegmentBytes: 120})
	if got := j.Stats(); got.FirstLSN != st.FirstLSN || got.LastLSN != 30 {
		t.Fatalf("after reopen: %+v", got)
	}
	// Everything applied: the active segment is rolled and removed too.
	if err := j.Compact(30); err != nil {
		t.Fatal(err)
	}
	if got := j.Stats(); got.Segments != 1 || got.Records != 0 || got.FirstLSN != 0 || got.LastLSN != 30 {
		t.Fatalf("after Compact(30): %+v", got)
	}
	checkRecords(t, replayAll(t, j, 0), 31, 30)
	j.Close()

	// Numbering survives a journal compacted to nothing.
	j = mustOpen(t, dir, Options{SegmentBytes: 120})
	defer j.Close()
	if got := j.LastLSN(); got != 30 {
		t.Fatalf("LastLSN after full compaction and reopen = %d", got)
	}
	appendN(t, j, 3)
	checkRecords(t, replayAll(t, j, 0), 31, 33)
	if err := j.Compact(1000); err != nil { // beyond LastLSN: all of it
		t.Fatal(err)
	}
	if got := j.Stats(); got.Records != 0 || got.LastLSN != 33 {
		t.Fatalf("after Compact(1000): %+v", got)
	}
}

// TestCompactFaults simulates a crash at every hook point of a compaction,
// at every occurrence, and checks that the journal reopens with a
// contiguous run of correct records ending at the last one, and that
// compaction then completes.
func TestCompactFaults(t *testing.T) {
	const n = 30
	for _, upTo := range []uint64{15, n} {
		for _, point := range []string{"compact-before-remove", "compact-after-remove", "roll-after-create"} {
			for nth := 1; ; nth++ {
				calls := 0
				hit := t.Run(fmt.Sprintf("upTo=%d/%s/%d", upTo, point, nth), func(t *testing.T) {
					dir := t.TempDir()
					var armed atomic.Bool // count only the compaction's calls
					hook := faultAt(point, nth, &calls)
					j := mustOpen(t, dir, Options{SegmentBytes: 120, Fault: func(p string) error {
						if armed.Load() {
							return hook(p)
						}
						return nil
					}})
					appendN(t, j, n)
					armed.Store(true)
					err := j.Compact(upTo)
					if calls < nth {
						if err != nil {
							t.Fatalf("Compact without fault: %v", err)
						}
						j.Close()
						return
					}
					if !errors.Is(err, errInjected) {
						t.Fatalf("Compact = %v, want the injected fault", err)
					}
					if _, err := j.Append(payload(n + 1)); err == nil {
						t.Fatal("journal still usable after a fault")
					}
					j.Close() // the "crash": nothing more is written

					j = mustOpen(t, dir, Options{SegmentBytes: 120})
					defer j.Close()
					st := j.Stats()
					if st.LastLSN != n || st.FirstLSN > upTo+1 && st.Records > 0 {
						t.Fatalf("after crash: %+v", st)
					}
					first := st.FirstLSN
					if st.Records == 0 {
						first = n + 1
					}
					checkRecords(t, replayAll(t, j, 0), first, n)
					if err := j.Compact(upTo); err != nil {
						t.Fatal(err)
					}
					checkRecords(t, replayAll(t, j, upTo), upTo+1, n)
					appendN(t, j, 1)
				})
				if !hit {
					t.FailNow()
				}
				if calls < nth { // the point was not reached that often: done
					if nth == 1 && !(point == "roll-after-create" && upTo < n) {
						t.Fatalf("upTo=%d: %s never reached", upTo, point)
					}
					break
				}
			}
		}
	}
}
