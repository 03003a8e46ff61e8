package dialect

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestPgTxidStatusCrashCases: the resolver of a lost COMMIT answer takes an
// id "in the future" as never committed, trusts "committed" only from the
// server that ran the transaction, and says ErrCommitAmbiguous otherwise.
func TestPgTxidStatusCrashCases(t *testing.T) {
	db := pgdOpen(t)
	ctx := context.Background()
	var xid int64
	var started time.Time
	if err := db.QueryRowContext(ctx, "SELECT txid_current(), pg_postmaster_start_time()").Scan(&xid, &started); err != nil {
		t.Fatal(err)
	}
	c := testConn(t, db)
	resolve := func(xid int64, started time.Time) (committed, known bool, err error) {
		t.Helper()
		return resolveConn(t, c, pgTxidStatus(xid, started))
	}
	if committed, known, err := resolve(xid, started); !committed || !known || err != nil {
		t.Errorf("a committed transaction on the same server: %v %v %v", committed, known, err)
	}
	if committed, known, err := resolve(xid+1_000_000, started); committed || !known || err != nil {
		t.Errorf("an id in the future (lost in a crash): %v %v %v, want not committed, known", committed, known, err)
	}
	other := started.Add(-time.Hour) // as if the server had restarted since
	if _, known, err := resolve(xid, other); known || !errors.Is(err, ErrCommitAmbiguous) {
		t.Errorf("committed, but on a restarted server: known %v err %v, want ErrCommitAmbiguous", known, err)
	}
	if committed, known, err := resolve(xid+1_000_000, other); committed || !known || err != nil {
		t.Errorf("in the future on a restarted server: %v %v %v, want not committed, known", committed, known, err)
	}
}
