package writeback

import (
	"context"
	"database/sql"
	"testing"
	"time"
)

// testTxOwnLock: a transaction updates row 3 and holds its lock; another
// connection's UPDATE of row 3 is buffered; the transaction then reads the
// row. Directly, the other UPDATE would wait for the transaction, and the
// read would return at once with the transaction's own value. Through
// writeback the read must not wait for a flush that waits for the
// transaction (a deadlock until a timeout): same result, within a second.
//
// Another connection's buffered write of an unrelated row (1) is flushed by
// the read's barrier: a read-committed transaction sees it, as directly; a
// transaction that keeps its first snapshot does not (wantOther).
func testTxOwnLock(t *testing.T, driverName, dsn string, level sql.IsolationLevel, dollar bool, wantOther int64) {
	direct, err := sql.Open(driverName, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	execAll(t, direct, "CREATE TABLE counters (id BIGINT NOT NULL PRIMARY KEY, n BIGINT NOT NULL)")
	for i := 1; i <= 3; i++ {
		mustExec(t, direct, placeholders("INSERT INTO counters (id, n) VALUES (?, 0)", dollar), i)
	}
	wb := openWriteback(t, driverName, dsn, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n")
	defer wb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tx, err := wb.BeginTx(ctx, &sql.TxOptions{Isolation: level})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	// A read first: the transaction is opened on the database (a transaction
	// whose only statement so far is a bufferable write is held, and takes
	// effect when it commits or first reads: TestLazyTxOrder).
	var rows int64
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM counters").Scan(&rows); err != nil || rows != 3 {
		t.Fatalf("count %d, %v", rows, err)
	}
	if _, err := tx.ExecContext(ctx, placeholders("UPDATE counters SET n = n + 1 WHERE id = ?", dollar), 3); err != nil {
		t.Fatal(err)
	}
	// Another connection of the pool: buffered, acknowledged at once.
	if _, err := wb.ExecContext(ctx, placeholders("UPDATE counters SET n = n + 10 WHERE id = ?", dollar), 3); err != nil {
		t.Fatal(err)
	}
	if _, err := wb.ExecContext(ctx, placeholders("UPDATE counters SET n = n + 100 WHERE id = ?", dollar), 1); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var n, other int64
	if err := tx.QueryRowContext(ctx, placeholders("SELECT n FROM counters WHERE id = ?", dollar), 1).Scan(&other); err != nil {
		t.Fatalf("read of another row in the transaction after %s: %v", time.Since(start), err)
	}
	if other != wantOther {
		t.Fatalf("the transaction read row 1 = %d, want %d", other, wantOther)
	}
	if err := tx.QueryRowContext(ctx, placeholders("SELECT n FROM counters WHERE id = ?", dollar), 3).Scan(&n); err != nil {
		t.Fatalf("read in the transaction after %s: %v", time.Since(start), err)
	}
	took := time.Since(start)
	if n != 1 {
		t.Fatalf("the transaction read n = %d, want its own 1", n)
	}
	if took > time.Second {
		t.Fatalf("the read took %s, want under 1s", took)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := Flush(ctx, wb); err != nil {
		t.Fatal(err)
	}
	if err := direct.QueryRowContext(ctx, "SELECT n FROM counters WHERE id = 3").Scan(&n); err != nil || n != 11 {
		t.Fatalf("after commit and flush: n = %d, %v; want 11", n, err)
	}
	if err := direct.QueryRowContext(ctx, "SELECT n FROM counters WHERE id = 1").Scan(&n); err != nil || n != 100 {
		t.Fatalf("after commit and flush: row 1 n = %d, %v; want 100", n, err)
	}
	t.Logf("read in %s", took.Round(time.Microsecond))
}

func TestTxOwnLockSQLite(t *testing.T) {
	testTxOwnLock(t, "sqlite3", sqliteDSN(t, "txlock"), sql.LevelDefault, false, 0)
}

func TestTxOwnLockPostgresRepeatableRead(t *testing.T) {
	testTxOwnLock(t, "pgx", pgSchema(t, "txlock"), sql.LevelRepeatableRead, true, 0)
}

func TestTxOwnLockPostgresReadCommitted(t *testing.T) {
	testTxOwnLock(t, "pgx", pgSchema(t, "txlock"), sql.LevelDefault, true, 100)
}

// TestTxUnkeyedWritePostgres: a read-committed transaction that changes a
// back table's rows by other than their key (the driver cannot know which
// rows it locks) skips that table's barrier from then on, rather than wait
// for a flush it may block: its read returns at once with its own value.
func TestTxUnkeyedWritePostgres(t *testing.T) {
	dsn := pgSchema(t, "txunkeyed")
	direct, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	execAll(t, direct, "CREATE TABLE counters (id BIGINT NOT NULL PRIMARY KEY, n BIGINT NOT NULL)")
	execAll(t, direct, "INSERT INTO counters VALUES (1, 0), (3, 0)")
	wb := openWriteback(t, "pgx", dsn, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n")
	defer wb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tx, err := wb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "UPDATE counters SET n = n + 1 WHERE id IN (3)"); err != nil {
		t.Fatal(err)
	}
	if _, err := wb.ExecContext(ctx, "UPDATE counters SET n = n + 10 WHERE id = $1", 3); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var n int64
	if err := tx.QueryRowContext(ctx, "SELECT n FROM counters WHERE id = 3").Scan(&n); err != nil || n != 1 {
		t.Fatalf("read in the transaction after %s: n = %d, %v; want its own 1", time.Since(start), n, err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("the read took %s, want under 1s", took)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := Flush(ctx, wb); err != nil {
		t.Fatal(err)
	}
	if err := direct.QueryRowContext(ctx, "SELECT n FROM counters WHERE id = 3").Scan(&n); err != nil || n != 11 {
		t.Fatalf("after commit and flush: n = %d, %v; want 11", n, err)
	}
}
