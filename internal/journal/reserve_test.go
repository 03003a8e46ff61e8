package journal

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// TestReserveThenWrite: reserved records are numbered at once, in order,
// written only when waited for, and written together: while one batch's
// write is held up, the records reserved meanwhile form the next batch, and
// one write(2) takes them all.
func TestReserveThenWrite(t *testing.T) {
	dir := t.TempDir()
	var writes atomic.Int32
	entered := make(chan struct{})
	release := make(chan struct{})
	j := mustOpen(t, dir, Options{Fsync: No, Fault: func(point string) error {
		if point == "write" && writes.Add(1) == 1 {
			close(entered)
			<-release
		}
		return nil
	}})
	defer j.Close()
	first, err := j.Reserve(payload(1))
	if err != nil || first != 1 {
		t.Fatalf("Reserve: %d, %v; want 1", first, err)
	}
	if got := j.LastLSN(); got != 0 {
		t.Fatalf("LastLSN after Reserve = %d, want 0: nothing is written before a wait", got)
	}
	done := make(chan error, 1)
	go func() { done <- j.WaitWritten(context.Background(), 1) }()
	<-entered // the first batch is being written, and held there
	const more = 20
	var wg sync.WaitGroup
	errs := make(chan error, more)
	for i := uint64(2); i <= more+1; i++ {
		lsn, err := j.Reserve(payload(i))
		if err != nil || lsn != i {
			t.Fatalf("Reserve: %d, %v; want %d", lsn, err, i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- j.WaitWritten(context.Background(), lsn)
		}()
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := writes.Load(); n != 2 {
		t.Fatalf("%d writes for %d records, want 2: the records reserved during the first write are written together", n, more+1)
	}
	checkRecords(t, replayAll(t, j, 0), 1, more+1)
}

// TestConcurrentAppendsKeepOrder: appends and reservations from many
// goroutines get distinct consecutive LSNs, and each LSN holds its own
// record after a reopen.
func TestConcurrentAppendsKeepOrder(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{Fsync: No, SegmentBytes: 4 << 10})
	const goroutines, per = 8, 200
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
				switch i % 3 {
				case 0:
					lsn, err = j.Append(rec)
				case 1:
					lsn, err = j.AppendBatch([][]byte{rec})
				default:
					if lsn, err = j.Reserve(rec); err == nil {
						err = j.WaitWritten(context.Background(), lsn)
					}
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

// TestFullDiskRefusesReserve: space is allocated ahead of the writes, so a
// full disk is met when a record is reserved: it is refused with an
// *AppendError wrapping ENOSPC, nothing is numbered, and the journal takes
// records again once there is room.
func TestFullDiskRefusesReserve(t *testing.T) {
	var full atomic.Bool
	var allocs atomic.Int32
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{Fsync: No, allocChunk: 64, Fault: func(point string) error {
		if point == "allocate" {
			allocs.Add(1)
			if full.Load() {
				return syscall.ENOSPC
			}
		}
		return nil
	}})
	defer j.Close()
	for i := uint64(1); i <= 3; i++ {
		lsn, err := j.Reserve(payload(i))
		if err == nil {
			err = j.WaitWritten(context.Background(), lsn)
		}
		if err != nil || lsn != i {
			t.Fatalf("Reserve: %d, %v", lsn, err)
		}
	}
	if allocs.Load() == 0 {
		t.Fatal("no space was allocated ahead of the writes")
	}
	full.Store(true)
	for range 3 {
		_, err := j.Reserve(payload(99))
		var ae *AppendError
		if !errors.As(err, &ae) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Reserve on a full disk: %v, want an *AppendError wrapping ENOSPC", err)
		}
	}
	full.Store(false)
	lsn, err := j.Reserve(payload(4))
	if err == nil {
		err = j.WaitWritten(context.Background(), lsn)
	}
	if err != nil || lsn != 4 {
		t.Fatalf("Reserve after space came back: %d, %v; want 4", lsn, err)
	}
	checkRecords(t, replayAll(t, j, 0), 1, 4)
}

// TestReservedWriteFailureFailsJournal: a reserved record's number may be
// in use already, so when its write fails the journal fails as a whole
// (its waiters and every later append get the error), and a reopen keeps
// what was written before.
func TestReservedWriteFailureFailsJournal(t *testing.T) {
	dir := t.TempDir()
	var fail atomic.Bool
	j := mustOpen(t, dir, Options{Fsync: No, Fault: func(point string) error {
		if point == "write" && fail.Load() {
			return syscall.EIO
		}
		return nil
	}})
	appendN(t, j, 2)
	fail.Store(true)
	lsn, err := j.Reserve(payload(3))
	if err != nil || lsn != 3 {
		t.Fatalf("Reserve: %d, %v", lsn, err)
	}
	if err := j.WaitWritten(context.Background(), lsn); !errors.Is(err, syscall.EIO) {
		t.Fatalf("WaitWritten of a record whose write failed: %v, want EIO", err)
	}
	fail.Store(false)
	if _, err := j.Append(payload(3)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Append after a reserved record's write failed: %v, want the journal's error", err)
	}
	if _, err := j.Reserve(payload(3)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Reserve after a reserved record's write failed: %v, want the journal's error", err)
	}
	j.Close()
	j = mustOpen(t, dir, Options{})
	defer j.Close()
	checkRecords(t, replayAll(t, j, 0), 1, 2)
	appendN(t, j, 1)
}

// TestWaitWrittenContext: a waiter whose context ends returns its error;
// the record stays reserved and is written by the next waiter.
func TestWaitWrittenContext(t *testing.T) {
	dir := t.TempDir()
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	j := mustOpen(t, dir, Options{Fsync: No, Fault: func(point string) error {
		if point == "write" {
			once.Do(func() {
				close(entered)
				<-release
			})
		}
		return nil
	}})
	defer j.Close()
	lsn1, _ := j.Reserve(payload(1))
	done := make(chan error, 1)
	go func() { done <- j.WaitWritten(context.Background(), lsn1) }()
	<-entered
	lsn2, err := j.Reserve(payload(2))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := j.WaitWritten(ctx, lsn2); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitWritten with a canceled context: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := j.WaitWritten(context.Background(), lsn2); err != nil {
		t.Fatal(err)
	}
	checkRecords(t, replayAll(t, j, 0), 1, 2)
}

// TestAllocatedSpaceFreedOnClose: what was allocated ahead is given back
// when the journal closes (and when a segment is rolled): the files hold
// only their records.
func TestAllocatedSpaceFreedOnClose(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{Fsync: No, SegmentBytes: 1 << 10})
	appendN(t, j, 100)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	for _, s := range segFiles(t, dir) {
		fi, err := os.Stat(s.path)
		if err != nil {
			t.Fatal(err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			t.Skip("no block counts here")
		}
		if alloc := st.Blocks * 512; alloc > fi.Size()+64<<10 {
			t.Errorf("%s: %d bytes allocated for %d of records", s.path, alloc, fi.Size())
		}
	}
}
