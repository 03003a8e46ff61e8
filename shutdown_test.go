package writeback

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestExecDoneContextBuffersNothing: a write with a context that is already
// done is neither buffered nor applied, on a pinned connection (where
// database/sql does not check the context itself).
func TestExecDoneContextBuffersNothing(t *testing.T) {
	dsn := sqliteDSN(t, "donectx")
	direct, err := sql.Open("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	execAll(t, direct, "CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO counters VALUES (1, 0)")
	wb := openWriteback(t, "sqlite3", dsn, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n")
	defer wb.Close()
	conn, err := wb.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := conn.ExecContext(ctx, "UPDATE counters SET n = n + 1 WHERE id = ?", 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Exec with a cancelled context: %v, want context.Canceled", err)
	}
	if err := Flush(context.Background(), wb); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := direct.QueryRow("SELECT n FROM counters WHERE id = 1").Scan(&n); err != nil || n != 0 {
		t.Fatalf("n = %d, %v; want 0: the cancelled write must not be applied", n, err)
	}
	if st, _ := StatsOf(wb); st.Buffered != 0 {
		t.Fatalf("Buffered = %d, want 0", st.Buffered)
	}
}

// TestShutdownContextBoundsTheFinalFlush: with the database unreachable,
// ShutdownContext returns when its context ends (not after the close
// timeout) and says how many rows were left.
func TestShutdownContextBoundsTheFinalFlush(t *testing.T) {
	p, viaProxy, direct := proxiedPostgres(t, "shutdown")
	ddb, err := sql.Open("pgx", direct)
	if err != nil {
		t.Fatal(err)
	}
	defer ddb.Close()
	execAll(t, ddb, "CREATE TABLE counters (id bigint PRIMARY KEY, n bigint NOT NULL); INSERT INTO counters SELECT g, 0 FROM generate_series(0, 9) g")
	wb, _ := openWritebackWith(t, "pgx", viaProxy, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n", WithCloseTimeout(time.Minute))
	for i := range 10 {
		if _, err := wb.Exec("UPDATE counters SET n = n + 1 WHERE id = $1", i); err != nil {
			t.Fatal(err)
		}
	}
	end := p.outage()
	defer end()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = ShutdownContext(ctx, wb)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "10 buffered rows") {
		t.Fatalf("ShutdownContext during an outage: %v, want it to report the 10 rows left", err)
	}
	// Bounded by the context (300 ms), far below the one-minute close
	// timeout; the margin is for -race on a shared machine.
	if took > 10*time.Second {
		t.Fatalf("ShutdownContext took %s with a 300ms context", took)
	}
	t.Logf("ShutdownContext returned after %s: %v", took.Round(time.Millisecond), err)
}

// TestOutageOnFullThroughConnectionRate: during an outage, writes that meet
// a full buffer under on_full: through go to the database after their
// barrier; while the table's flushes fail, the barriers share the table's
// next attempt (at most two a second) and fail with the database's error
// ("database unavailable: ..."), instead of each write opening a connection.
func TestOutageOnFullThroughConnectionRate(t *testing.T) {
	p, viaProxy, direct := proxiedPostgres(t, "fullthrough")
	ddb, err := sql.Open("pgx", direct)
	if err != nil {
		t.Fatal(err)
	}
	defer ddb.Close()
	execAll(t, ddb, "CREATE TABLE counters (id bigint PRIMARY KEY, n bigint NOT NULL)")
	wb, _ := openWritebackWith(t, "pgx", viaProxy, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 50ms\n    max_dirty: 8\n    on_full: through\n", WithCloseTimeout(time.Second))
	end := p.outage()
	var failed, ok int
	var unavailable error
	// Counted over 3 s, from half a second into the outage: the first
	// failures of a flush are retried quickly (backoff from 40 ms up).
	const window = 3 * time.Second
	warm := time.Now().Add(500 * time.Millisecond)
	deadline := warm.Add(window)
	before := int64(-1)
	for i := int64(0); time.Now().Before(deadline); i++ {
		if before < 0 && time.Now().After(warm) {
			before = p.accepted.Load()
		}
		_, err := wb.Exec("INSERT INTO counters (id, n) VALUES ($1, 1)", i)
		if err != nil {
			failed++
			if unavailable == nil && strings.Contains(err.Error(), "database unavailable") {
				unavailable = err
			}
		} else {
			ok++
		}
	}
	attempts := p.accepted.Load() - before
	end()
	perSecond := float64(attempts) / window.Seconds()
	t.Logf("outage of %s: %d writes acknowledged, %d failed, %d connection attempts (%.1f/s); first error: %v", window, ok, failed, attempts, perSecond, unavailable)
	if perSecond >= 10 {
		t.Fatalf("%.1f connection attempts a second during the outage, want under 10", perSecond)
	}
	if failed == 0 || unavailable == nil {
		t.Fatalf("writes past the bound should fail with \"database unavailable\": %d failed, %v", failed, unavailable)
	}
	if ok < 16 {
		// The first 16 are taken by the buffer (2 × max_dirty rows).
		t.Fatalf("only %d writes acknowledged, want the buffer's 16", ok)
	}
}

// TestJournalFullFailsWritesAndResumes: while the journal cannot append (a
// full disk, injected), writes that need it fail with ErrJournal wrapping
// ENOSPC and nothing is buffered; once it can, writes are taken again by
// themselves; every acknowledged write reaches the database, and Close
// returns nil.
func TestJournalFullFailsWritesAndResumes(t *testing.T) {
	dsn := sqliteDSN(t, "jfull")
	direct, err := sql.Open("sqlite3", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	execAll(t, direct, "CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO counters VALUES (0, 0), (1, 0)")
	var full atomic.Bool
	fault := withJournalFault(func(point string) error {
		if point == "write" && full.Load() {
			return syscall.ENOSPC
		}
		return nil
	})
	rulesPath := writeRulesFile(t, journalRules(filepath.Join(t.TempDir(), "journal"), "everysec", "memory", "1h"))
	wb, err := openWithHooks("sqlite3", rulesPath, dsn, fault)
	if err != nil {
		t.Fatal(err)
	}
	acked := 0
	inc := func() error {
		_, err := wb.Exec("UPDATE counters SET n = n + 1 WHERE id = ?", acked%2)
		if err == nil {
			acked++
		}
		return err
	}
	for range 10 {
		if err := inc(); err != nil {
			t.Fatal(err)
		}
	}
	full.Store(true)
	for range 5 {
		if err := inc(); !errors.Is(err, ErrJournal) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("write with the journal full: %v, want ErrJournal wrapping ENOSPC", err)
		}
	}
	full.Store(false)
	for range 10 {
		if err := inc(); err != nil {
			t.Fatalf("write after space came back: %v", err)
		}
	}
	if err := wb.Close(); err != nil {
		t.Fatalf("Close after everything was flushed: %v", err)
	}
	var sum int
	if err := direct.QueryRow("SELECT SUM(n) FROM counters").Scan(&sum); err != nil || sum != acked {
		t.Fatalf("SUM(n) = %d, %v; want the %d acknowledged writes", sum, err, acked)
	}
}
