package journal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestAppendReplayAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{})
	if got := j.LastLSN(); got != 0 {
		t.Fatalf("fresh journal LastLSN = %d", got)
	}
	appendN(t, j, 10)
	checkRecords(t, replayAll(t, j, 0), 1, 10)
	checkRecords(t, replayAll(t, j, 7), 8, 10)
	checkRecords(t, replayAll(t, j, 10), 11, 10)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	// LSNs continue across restarts.
	for round := range 3 {
		j = mustOpen(t, dir, Options{})
		base := uint64(10 + 5*round)
		if got := j.LastLSN(); got != base {
			t.Fatalf("reopen %d: LastLSN = %d, want %d", round, got, base)
		}
		appendN(t, j, 5)
		checkRecords(t, replayAll(t, j, 0), 1, base+5)
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAppendBatchAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{SegmentBytes: 100})
	var recs [][]byte
	for i := uint64(1); i <= 20; i++ {
		recs = append(recs, payload(i))
	}
	last, err := j.AppendBatch(recs)
	if err != nil || last != 20 {
		t.Fatalf("AppendBatch = %d, %v", last, err)
	}
	if last, err := j.AppendBatch(nil); err != nil || last != 20 {
		t.Fatalf("empty AppendBatch = %d, %v", last, err)
	}
	st := j.Stats()
	if st.Segments < 5 || st.Records != 20 || st.FirstLSN != 1 || st.LastLSN != 20 {
		t.Fatalf("stats after batch: %+v", st)
	}
	// Every segment but possibly one over-sized record stays within the
	// limit (in records: the active one is allocated ahead).
	for _, s := range scannedSegs(t, dir) {
		if s.size > 100 {
			t.Errorf("%s is %d bytes, over SegmentBytes", s.path, s.size)
		}
	}
	// A record larger than a segment gets one of its own.
	big := make([]byte, 300)
	if _, err := j.Append(big); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = mustOpen(t, dir, Options{SegmentBytes: 100})
	defer j.Close()
	got := replayAll(t, j, 0)
	checkRecords(t, got[:20], 1, 20)
	if len(got) != 21 || len(got[20].b) != 300 {
		t.Fatalf("big record not replayed: %d records", len(got))
	}
	if st := j.Stats(); st.Bytes != dirBytes(t, dir) {
		t.Fatalf("Stats.Bytes = %d, files hold %d", st.Bytes, dirBytes(t, dir))
	}
}

// dirBytes is what the segment files of dir hold in headers and records:
// an open journal's active segment is longer, allocated ahead, and the
// zeros of its unused end are not counted.
func dirBytes(t *testing.T, dir string) int64 {
	var n int64
	for _, seg := range scannedSegs(t, dir) {
		n += seg.size
	}
	return n
}

// scannedSegs lists the segments of dir with the size of what they hold.
func scannedSegs(t *testing.T, dir string) []segment {
	segs, err := listSegments(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	s, err := scanDir(dir, segs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s.segs
}

// activeSize is the bytes of records (and header) of j's active segment.
func activeSize(j *Journal) int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.segs[len(j.segs)-1].size
}

func TestEmptyRecordAndLimits(t *testing.T) {
	j := mustOpen(t, t.TempDir(), Options{})
	defer j.Close()
	lsn, err := j.Append(nil)
	if err != nil || lsn != 1 {
		t.Fatalf("Append(nil) = %d, %v", lsn, err)
	}
	if _, err := j.Append(make([]byte, MaxRecordBytes+1)); err == nil {
		t.Fatal("oversized record accepted")
	}
	if lsn, err := j.Append([]byte("x")); err != nil || lsn != 2 {
		t.Fatalf("journal unusable after rejecting an oversized record: %d, %v", lsn, err)
	}
	if err := j.WaitDurable(context.Background(), 3); err == nil {
		t.Fatal("WaitDurable beyond LastLSN succeeded")
	}
	got := replayAll(t, j, 0)
	if len(got) != 2 || len(got[0].b) != 0 || string(got[1].b) != "x" {
		t.Fatalf("replay: %+v", got)
	}
}

func TestClose(t *testing.T) {
	j := mustOpen(t, t.TempDir(), Options{Fsync: No})
	appendN(t, j, 3)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := j.Append([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if err := j.Replay(0, func(uint64, []byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Replay after Close: %v", err)
	}
	if err := j.Compact(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Compact after Close: %v", err)
	}
	// Close synced everything, whatever the policy.
	if st := j.Stats(); st.DurableLSN != 3 {
		t.Fatalf("DurableLSN after Close = %d", st.DurableLSN)
	}
}

func TestReplayCallbackError(t *testing.T) {
	j := mustOpen(t, t.TempDir(), Options{SegmentBytes: 80})
	defer j.Close()
	appendN(t, j, 10)
	stop := errors.New("stop")
	n := 0
	err := j.Replay(0, func(lsn uint64, _ []byte) error {
		n++
		if lsn == 4 {
			return stop
		}
		return nil
	})
	if err != stop || n != 4 {
		t.Fatalf("Replay = %v after %d records", err, n)
	}
}

func TestParsePolicy(t *testing.T) {
	for _, p := range []Policy{Always, Everysec, No} {
		got, err := ParsePolicy(" " + strings.ToUpper(p.String()))
		if err != nil || got != p {
			t.Errorf("ParsePolicy(%v) = %v, %v", p, got, err)
		}
	}
	if _, err := ParsePolicy("sometimes"); err == nil {
		t.Error("ParsePolicy accepted nonsense")
	}
	if _, err := Open(t.TempDir(), Options{Fsync: 9}); err == nil {
		t.Error("Open accepted an invalid policy")
	}
}

func TestLockSameProcess(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{})
	_, err := Open(dir, quietOpts(Options{}))
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open: %v, want ErrInUse", err)
	}
	if !strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("error does not explain the lock: %v", err)
	}
	if _, _, _, err := Repair(dir); !errors.Is(err, ErrInUse) {
		t.Fatalf("Repair on an open journal: %v", err)
	}
	if _, err := Check(dir, nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("Check on an open journal: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = mustOpen(t, dir, Options{})
	j.Close()
}

func TestOpenIgnoresStrayFiles(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{})
	appendN(t, j, 3)
	j.Close()
	// A temporary segment left by a crash during a roll is removed;
	// unrelated files are left alone.
	tmp := filepath.Join(dir, segName(4)+".tmp")
	os.WriteFile(tmp, []byte("half a header"), 0o644)
	other := filepath.Join(dir, "README")
	os.WriteFile(other, []byte("hi"), 0o644)
	j = mustOpen(t, dir, Options{})
	defer j.Close()
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("temporary segment not removed: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatal(err)
	}
	appendN(t, j, 1)
}

// TestConcurrentUse runs appenders, waiters, replayers and a compactor
// together (meant for -race) and checks that what Replay sees is always a
// contiguous run of correct records.
func TestConcurrentUse(t *testing.T) {
	for _, pol := range []Policy{Always, Everysec, No} {
		t.Run(pol.String(), func(t *testing.T) {
			j := mustOpen(t, t.TempDir(), Options{Fsync: pol, SegmentBytes: 512})
			var wg sync.WaitGroup
			errc := make(chan error, 100)
			done := make(chan struct{})
			var mu sync.Mutex // payload(lsn) needs the LSN before appending
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 200 {
						mu.Lock()
						lsn, err := j.Append(payload(j.LastLSN() + 1))
						mu.Unlock()
						if err == nil {
							err = j.WaitDurable(context.Background(), lsn)
						}
						if err != nil {
							errc <- err
							return
						}
					}
				}()
			}
			var bg sync.WaitGroup
			bg.Add(2)
			go func() { // replayer
				defer bg.Done()
				for {
					select {
					case <-done:
						return
					default:
					}
					var prev uint64
					err := j.Replay(0, func(lsn uint64, b []byte) error {
						if prev != 0 && lsn != prev+1 {
							return errors.New("replay not contiguous")
						}
						if string(b) != string(payload(lsn)) {
							return errors.New("replay payload mismatch")
						}
						prev = lsn
						return nil
					})
					if err != nil {
						errc <- err
						return
					}
				}
			}()
			go func() { // compactor
				defer bg.Done()
				for {
					select {
					case <-done:
						return
					default:
					}
					if last := j.LastLSN(); last > 20 {
						if err := j.Compact(last - 20); err != nil {
							errc <- err
							return
						}
					}
				}
			}()
			wg.Wait()
			close(done)
			bg.Wait()
			close(errc)
			for err := range errc {
				t.Fatal(err)
			}
			last := j.LastLSN()
			if last != 800 {
				t.Fatalf("LastLSN = %d", last)
			}
			st := j.Stats()
			checkRecords(t, replayAll(t, j, 0), st.FirstLSN, last)
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
