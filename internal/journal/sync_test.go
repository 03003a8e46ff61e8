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
