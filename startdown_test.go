package writeback

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStartWhileDatabaseDown opens a connector whose journal holds 100,000
// unapplied records while PostgreSQL is unreachable (a fault proxy that
// refuses every connection): the open succeeds at once from the catalog
// kept beside the journal, writes are acknowledged from memory, and when
// the database answers every held record is applied exactly once, before
// the writes made during the outage (an assignment made then is not undone
// by an older delta).
func TestStartWhileDatabaseDown(t *testing.T) {
	p, via, direct := proxiedPostgres(t, "startdown")
	ddb, err := sql.Open("pgx", direct)
	if err != nil {
		t.Fatal(err)
	}
	defer ddb.Close()
	const keys, flushed, held = 500, 10_000, 100_000
	createCounters(t, ddb, keys, true)
	jdir := filepath.Join(t.TempDir(), "journal")
	rules := journalRules(jdir, "no", "memory", "1h")
	want := map[int64]int64{}
	update := func(db *sql.DB, id, delta int64) {
		t.Helper()
		if _, err := db.Exec("UPDATE counters SET n = n + $1 WHERE id = $2", delta, id); err != nil {
			t.Fatal(err)
		}
		want[id] += delta
	}

	// Before: some writes applied, then 100,000 that the database never
	// gets: the outage starts and Close gives up on them.
	wb, _ := openWritebackWith(t, "pgx", via, rules, WithCloseTimeout(200*time.Millisecond))
	for i := 0; i < flushed; i++ {
		update(wb, int64(i%keys), 1)
	}
	if err := Flush(context.Background(), wb); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < held; i++ {
		update(wb, int64(i%keys), 2)
	}
	endOutage := p.outage()
	if err := wb.Close(); err == nil || !strings.Contains(err.Error(), "kept in the journal") {
		t.Fatalf("Close during the outage: %v, want the rows kept in the journal", err)
	}
	if _, err := os.Stat(filepath.Join(jdir, schemaSnapshot)); err != nil {
		t.Fatalf("no catalog kept beside the journal: %v", err)
	}

	// Open while the database is down.
	start := time.Now()
	logs := newStateLog()
	wb, c := openWritebackWith(t, "pgx", via, rules, WithCloseTimeout(5*time.Second), WithLogger(slog.New(logs)))
	opened := time.Since(start)
	t.Logf("open with the database down and %d unapplied records: %v", held, opened)
	if opened > 5*time.Second {
		t.Fatalf("open took %v: it waited for the database", opened)
	}
	if c.recovery.Load() == nil {
		t.Fatal("the recovery did not wait for the database")
	}
	// Acknowledged from memory during the outage: deltas, then an
	// assignment of row 0 that the held deltas must not overtake.
	for i := 0; i < 1000; i++ {
		update(wb, int64(i%keys), 3)
	}
	if _, err := wb.Exec("UPDATE counters SET n = $1 WHERE id = $2", 7, 0); err != nil {
		t.Fatal(err)
	}
	want[0] = 7
	update(wb, 0, 1)
	st, err := StatsOf(wb)
	if err != nil {
		t.Fatal(err)
	}
	if st.Buffered < 1002 {
		t.Fatalf("during the outage %d writes were buffered, want 1002", st.Buffered)
	}
	if got := counterValues(t, ddb); got[1] != flushed/keys {
		t.Fatalf("row 1 = %d during the outage, want %d (only the flushed writes)", got[1], flushed/keys)
	}

	endOutage()
	logs.await(t, "reconciled", 30*time.Second)
	if err := Flush(context.Background(), wb); err != nil {
		t.Fatal(err)
	}
	checkCounters(t, ddb, want)
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
	// A clean reopen replays nothing more.
	wb = openWriteback(t, "pgx", via, rules)
	if err := wb.Close(); err != nil {
		t.Fatal(err)
	}
	checkCounters(t, ddb, want)
}

// checkCounters compares every counter with want.
func checkCounters(t *testing.T, db *sql.DB, want map[int64]int64) {
	t.Helper()
	got := counterValues(t, db)
	var bad []string
	for id, n := range want {
		if got[id] != n {
			bad = append(bad, fmt.Sprintf("%d: %d, want %d", id, got[id], n))
		}
	}
	if len(bad) > 0 {
		t.Fatalf("%d counters differ, e.g. %v", len(bad), bad[:min(len(bad), 5)])
	}
}
