package journal

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestGroupCommitShared is the deterministic group-commit check: the first
// fsync is held until all 100 writers have appended, so every writer
// arrives while a sync is in flight, and they must all be covered by one
// further fsync instead of one each.
func TestGroupCommitShared(t *testing.T) {
	const writers = 100
	allAppended := make(chan struct{})
	var first atomic.Bool
	j := mustOpen(t, t.TempDir(), Options{Fsync: Always, Fault: func(p string) error {
		if p == "before-sync" && first.CompareAndSwap(false, true) {
			<-allAppended
		}
		return nil
	}})
	var appended atomic.Int32
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lsn, err := j.Append(payload(uint64(i)))
			if appended.Add(1) == writers {
				close(allAppended)
			}
			if err == nil {
				err = j.WaitDurable(context.Background(), lsn)
			}
			if err == nil && j.Stats().DurableLSN < lsn {
				err = errors.New("WaitDurable returned before the record was synced")
			}
			errc <- err
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := j.Stats()
	t.Logf("%d appends, %d fsyncs", writers, st.Syncs)
	if st.Syncs > 2 {
		t.Fatalf("%d fsyncs for %d concurrent appends; group commit should need at most 2", st.Syncs, writers)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestGroupCommitNatural runs 100 goroutines appending and waiting without
// any help from hooks and checks that fsyncs are shared.
func TestGroupCommitNatural(t *testing.T) {
	const writers, each = 100, 10
	j := mustOpen(t, t.TempDir(), Options{Fsync: Always})
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				lsn, err := j.Append([]byte("some buffered write"))
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
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	st := j.Stats()
	t.Logf("%d appends, %d fsyncs, avg fsync %v", writers*each, st.Syncs, st.SyncLatencyAvg)
	if st.DurableLSN != writers*each {
		t.Fatalf("DurableLSN = %d", st.DurableLSN)
	}
	if st.Syncs*4 > writers*each {
		t.Fatalf("%d fsyncs for %d appends: not group-committing", st.Syncs, writers*each)
	}
	j.Close()
}

func TestWaitDurableContext(t *testing.T) {
	release := make(chan struct{})
	j := mustOpen(t, t.TempDir(), Options{Fsync: Always, Fault: func(p string) error {
		if p == "before-sync" {
			<-release
		}
		return nil
	}})
	lsn, err := j.Append([]byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := j.WaitDurable(ctx, lsn); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitDurable with a cancelled context: %v", err)
	}
	close(release)
	if err := j.WaitDurable(context.Background(), lsn); err != nil {
		t.Fatal(err)
	}
	j.Close()
}

// TestEverysecLag shows that under Everysec nothing waits while the lag is
// within MaxLag, and that once it is exceeded both WaitDurable and Append
// wait for the (stalled) fsync instead of slipping past it.
func TestEverysecLag(t *testing.T) {
	clk := newFakeClock()
	syncStarted := make(chan struct{}, 1)
	release := make(chan struct{})
	var stall atomic.Bool
	j := mustOpen(t, t.TempDir(), Options{
		Fsync:     Everysec,
		MaxLag:    50 * time.Millisecond,
		now:       clk.Now,
		syncEvery: time.Hour, // no background tick during the test
		Fault: func(p string) error {
			if p == "before-sync" && stall.Load() {
				syncStarted <- struct{}{}
				<-release
			}
			return nil
		},
	})
	ctx := context.Background()
	lsn1, err := j.Append([]byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(40 * time.Millisecond)
	if err := j.WaitDurable(ctx, lsn1); err != nil {
		t.Fatal(err)
	}
	if st := j.Stats(); st.Syncs != 0 || st.DurableLSN != 0 || st.Lag != 40*time.Millisecond {
		t.Fatalf("within MaxLag: %+v", st)
	}

	// Past MaxLag, with the fsync stalled.
	stall.Store(true)
	clk.Advance(60 * time.Millisecond)
	waited := make(chan error, 1)
	go func() { waited <- j.WaitDurable(ctx, lsn1) }()
	<-syncStarted // the waiter asked for the sync, which now hangs
	appended := make(chan error, 1)
	go func() {
		_, err := j.Append([]byte("two"))
		appended <- err
	}()
	// Nothing signals "still blocked", so give a wrongly non-blocking
	// implementation time to slip through.
	select {
	case err := <-waited:
		t.Fatalf("WaitDurable returned (%v) while the fsync was stalled", err)
	case err := <-appended:
		t.Fatalf("Append returned (%v) while the lag exceeded MaxLag", err)
	case <-time.After(100 * time.Millisecond):
	}
	if st := j.Stats(); st.Lag != 100*time.Millisecond || st.LastLSN != 1 {
		t.Fatalf("while stalled: %+v", st)
	}
	// A writer that has not taken its row's lock yet waits in WaitLag,
	// within its context, instead of behind the held-back append.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := j.WaitLag(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitLag while the lag exceeded MaxLag: %v, want the context's error", err)
	}
	lagWaited := make(chan error, 1)
	go func() { lagWaited <- j.WaitLag(ctx) }()
	stall.Store(false)
	close(release)
	if err := <-lagWaited; err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	st := j.Stats()
	if st.DurableLSN < lsn1 || st.Syncs != 1 || st.LastLSN != 2 {
		t.Fatalf("after the sync: %+v", st)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestEverysecBackground checks that the background syncer syncs on its
// own, without any waiter.
func TestEverysecBackground(t *testing.T) {
	j := mustOpen(t, t.TempDir(), Options{Fsync: Everysec, syncEvery: 10 * time.Millisecond})
	defer j.Close()
	j.mu.Lock()
	synced := j.syncedCh
	j.mu.Unlock()
	lsn, err := j.Append([]byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-synced:
	case <-time.After(10 * time.Second):
		t.Fatal("background sync did not happen")
	}
	if st := j.Stats(); st.DurableLSN != lsn || st.Syncs != 1 || st.Lag != 0 {
		t.Fatalf("after background sync: %+v", st)
	}
}

func TestPolicyNo(t *testing.T) {
	dir := t.TempDir()
	j := mustOpen(t, dir, Options{Fsync: No, SegmentBytes: 200})
	appendN(t, j, 3)
	if err := j.WaitDurable(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	if st := j.Stats(); st.Syncs != 0 || st.DurableLSN != 0 || st.Lag < 0 {
		t.Fatalf("policy no synced on its own: %+v", st)
	}
	// A roll syncs the finished segment (see rollLocked).
	appendN(t, j, 10)
	if st := j.Stats(); st.Syncs == 0 || st.DurableLSN == 0 {
		t.Fatalf("roll did not sync: %+v", st)
	}
	j.Close()
	j = mustOpen(t, dir, Options{Fsync: No})
	defer j.Close()
	checkRecords(t, replayAll(t, j, 0), 1, 13)
}

// TestFaultAfterWrite: a failure right after a write leaves the record in
// the file; the journal refuses further work until reopened, and the
// reopened journal has it.
func TestFaultAfterWrite(t *testing.T) {
	dir := t.TempDir()
	calls := 0
	j := mustOpen(t, dir, Options{Fault: faultAt("after-write", 4, &calls)})
	appendN(t, j, 3)
	if _, err := j.Append(payload(4)); !errors.Is(err, errInjected) {
		t.Fatalf("Append at fault: %v", err)
	}
	if _, err := j.Append(payload(5)); !errors.Is(err, errInjected) {
		t.Fatalf("Append after fault: %v", err)
	}
	if err := j.WaitDurable(context.Background(), 4); !errors.Is(err, errInjected) {
		t.Fatalf("WaitDurable after fault: %v", err)
	}
	if err := j.Close(); !errors.Is(err, errInjected) {
		t.Fatalf("Close after fault: %v", err)
	}
	j = mustOpen(t, dir, Options{})
	defer j.Close()
	checkRecords(t, replayAll(t, j, 0), 1, 4)
	appendN(t, j, 1)
}

// TestFaultBeforeSync: a failed fsync fails every waiter and the journal.
func TestFaultBeforeSync(t *testing.T) {
	dir := t.TempDir()
	calls := 0
	j := mustOpen(t, dir, Options{Fault: faultAt("before-sync", 1, &calls)})
	// One call: under Always the append itself starts the failing fsync.
	if _, err := j.AppendBatch([][]byte{payload(1), payload(2)}); err != nil {
		t.Fatal(err)
	}
	if err := j.WaitDurable(context.Background(), 2); !errors.Is(err, errInjected) {
		t.Fatalf("WaitDurable: %v", err)
	}
	if _, err := j.Append(payload(3)); !errors.Is(err, errInjected) {
		t.Fatalf("Append after failed sync: %v", err)
	}
	j.Close()
	j = mustOpen(t, dir, Options{})
	defer j.Close()
	checkRecords(t, replayAll(t, j, 0), 1, 2)
}

// TestAlwaysSyncsWithoutWaiter: under Always a record is fsynced even if
// nobody calls WaitDurable for it.
func TestAlwaysSyncsWithoutWaiter(t *testing.T) {
	j := mustOpen(t, t.TempDir(), Options{Fsync: Always})
	defer j.Close()
	for {
		j.mu.Lock()
		synced, durable := j.syncedCh, j.durable
		j.mu.Unlock()
		if durable == 1 {
			break
		}
		if durable == 0 && j.LastLSN() == 0 {
			if _, err := j.Append([]byte("a")); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-synced:
		case <-time.After(10 * time.Second):
			t.Fatal("record not synced without a waiter")
		}
	}
}
