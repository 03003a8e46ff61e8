package journal

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// TestConcurrentAppendsKeepOrder: appends from many goroutines, across
// segment rolls, get distinct consecutive LSNs, and each LSN holds its own
// record after a reopen.
func TestConcurrentAppendsKeepOrder(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{Fsync: No, SegmentBytes: 4 << 10})
	const goroutines, per = 8, 300
	var mu sync.Mutex
	got := map[uint64]string{}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				rec := []byte{byte(g), byte(i), byte(i >> 8)}
				var lsn uint64
				var err error
				if i%2 == 0 {
					lsn, err = j.Append(rec)
				} else {
					lsn, err = j.AppendBatch([][]byte{rec})
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if _, dup := got[lsn]; dup {
					t.Errorf("LSN %d handed out twice", lsn)
				}
				got[lsn] = string(rec)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = mustOpen(t, dir, Options{})
	defer j.Close()
	recs := replayAll(t, j, 0)
	if len(recs) != goroutines*per {
		t.Fatalf("replayed %d records, want %d", len(recs), goroutines*per)
	}
	for i, r := range recs {
		if r.lsn != uint64(i+1) || got[r.lsn] != string(r.b) {
			t.Fatalf("record %d: LSN %d %q, want LSN %d %q", i, r.lsn, r.b, i+1, got[uint64(i+1)])
		}
	}
}

// TestFullDiskRefusesRoll: a segment's disk space is allocated when it is
// created, so a full disk is met when a new segment is needed: the append
// fails with an *AppendError wrapping ENOSPC, nothing is written, the
// active segment stays as it was, and appends go on once there is room.
func TestFullDiskRefusesRoll(t *testing.T) {
	var full atomic.Bool
	var allocs atomic.Int32
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{Fsync: No, SegmentBytes: 256, Fault: func(point string) error {
		if point == "allocate" {
			allocs.Add(1)
			if full.Load() {
				return syscall.ENOSPC
			}
		}
		return nil
	}})
	defer j.Close()
	appendN(t, j, 3)
	full.Store(true)
	refused := 0
	for range 40 {
		lsn := j.LastLSN() + 1
		_, err := j.Append(payload(lsn))
		if err == nil {
			continue // room left in the active segment
		}
		var ae *AppendError
		if !errors.As(err, &ae) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Append on a full disk: %v, want an *AppendError wrapping ENOSPC", err)
		}
		refused++
	}
	if refused == 0 || allocs.Load() == 0 {
		t.Fatalf("%d appends refused, %d allocations: the segment never needed a successor", refused, allocs.Load())
	}
	full.Store(false)
	last := j.LastLSN()
	appendN(t, j, 20) // rolls now
	if len(segFiles(t, dir)) < 2 {
		t.Fatal("no new segment once there was room")
	}
	checkRecords(t, replayAll(t, j, 0), 1, last+20)
}

// TestLargeRecordGrowsSegment: a record larger than the segment size is
// given room in a segment of its own.
func TestLargeRecordGrowsSegment(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{Fsync: No, SegmentBytes: 1 << 10})
	big := []byte(strings.Repeat("b", 10<<10))
	for range 3 {
		if _, err := j.Append(big); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = mustOpen(t, dir, Options{})
	defer j.Close()
	recs := replayAll(t, j, 0)
	if len(recs) != 3 || string(recs[2].b) != string(big) {
		t.Fatalf("replayed %d records, want the 3 large ones", len(recs))
	}
}

// TestClosedFilesHoldOnlyRecords: segments are allocated ahead of their
// records while the journal is open, and cut to their records when a
// segment is rolled and when the journal closes.
func TestClosedFilesHoldOnlyRecords(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{Fsync: No, SegmentBytes: 64 << 10})
	appendN(t, j, 10)
	segs := segFiles(t, dir)
	fi, err := os.Stat(segs[len(segs)-1].path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() <= activeSize(j) {
		t.Fatalf("active segment is %d bytes while open, for %d of records: nothing allocated ahead", fi.Size(), activeSize(j))
	}
	appendN(t, j, 5000) // several rolls
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	for _, s := range segFiles(t, dir) {
		fi, err := os.Stat(s.path)
		if err != nil {
			t.Fatal(err)
		}
		offs := recordOffsets(t, s.path, s.first)
		if len(offs) == 0 {
			t.Fatalf("%s holds no record", s.path)
		}
		if last := offs[len(offs)-1]; fi.Size() <= last || fi.Size() > last+recHeaderSize+64 {
			t.Errorf("%s is %d bytes; its last record starts at %d: the allocated end was not cut", s.path, fi.Size(), last)
		}
	}
	j = mustOpen(t, dir, Options{})
	defer j.Close()
	checkRecords(t, replayAll(t, j, 0), 1, 5010)
}

// TestUnusedEndIsNotDamage: a journal left without Close (its process
// killed) has its active segment's allocated end still in the file, all
// zeros: Open takes it for the unused end it is, says nothing of a torn
// tail, and goes on appending after the last record.
func TestUnusedEndIsNotDamage(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{Fsync: No, SegmentBytes: 64 << 10})
	appendN(t, j, 10)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// What a killed process leaves: the file at its allocated size.
	segs := segFiles(t, dir)
	if err := os.Truncate(segs[len(segs)-1].path, 64<<10); err != nil {
		t.Fatal(err)
	}
	logger, logs := newLogger()
	j = mustOpen(t, dir, Options{Fsync: No, SegmentBytes: 64 << 10, Logger: logger})
	if strings.Contains(logs.String(), "torn") {
		t.Fatalf("Open called the unused end a torn tail: %s", logs)
	}
	appendN(t, j, 5)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j = mustOpen(t, dir, Options{})
	defer j.Close()
	checkRecords(t, replayAll(t, j, 0), 1, 15)
	if err := j.WaitDurable(context.Background(), 15); err != nil {
		t.Fatal(err)
	}
}
