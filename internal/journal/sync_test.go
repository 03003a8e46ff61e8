package journal

import (
	"context"
	"testing"
	"time"
)

// Sync is what ack: disk waits on: it must leave the record fsynced under
// every policy, including the ones whose WaitDurable returns at once.
func TestSyncForcesDurabilityUnderEveryPolicy(t *testing.T) {
	for _, p := range []Policy{Always, Everysec, No} {
		t.Run(p.String(), func(t *testing.T) {
			// A long MaxLag: WaitDurable alone would not wait under Everysec.
			j := mustOpen(t, t.TempDir(), Options{Fsync: p, MaxLag: time.Hour})
			defer j.Close()
			lsn, err := j.Append([]byte("record"))
			if err != nil {
				t.Fatal(err)
			}
			if err := j.Sync(context.Background(), lsn); err != nil {
				t.Fatal(err)
			}
			if st := j.Stats(); st.DurableLSN < lsn {
				t.Fatalf("after Sync(%d), DurableLSN = %d", lsn, st.DurableLSN)
			}
		})
	}
}

// TestEverysecCoarseClock: under Everysec the lag is read from the coarse
// clock, which must move (a lag that stayed 0 would never hold writers
// back), and Close stops its goroutine.
func TestEverysecCoarseClock(t *testing.T) {
	// A long sync interval: nothing syncs the record while the lag grows.
	j := mustOpen(t, t.TempDir(), Options{Fsync: Everysec, MaxLag: time.Hour, syncEvery: time.Hour})
	if j.clock == nil {
		t.Fatal("Everysec without a test clock has no coarse clock")
	}
	if _, err := j.Append([]byte("record")); err != nil {
		t.Fatal(err)
	}
	// The clock moves every coarseTick; a lag of 20 ticks shows it does,
	// however late the scheduler runs its goroutine.
	deadline := time.Now().Add(10 * time.Second)
	for j.Stats().Lag < 20*coarseTick {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s the lag is %v: the coarse clock does not move", j.Stats().Lag)
		}
		time.Sleep(coarseTick)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-j.clock.done: // its goroutine returned
	default:
		t.Fatal("Close returned with the coarse clock's goroutine running")
	}
}
