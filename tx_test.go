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
func testTxOwnLock(t *testing.T, driverName, dsn string, level sql.IsolationLevel, dollar bool) {
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
	if _, err := tx.ExecContext(ctx, placeholders("UPDATE counters SET n = n + 1 WHERE id = ?", dollar), 3); err != nil {
		t.Fatal(err)
	}
	// Another connection of the pool: buffered, acknowledged at once.
	if _, err := wb.ExecContext(ctx, placeholders("UPDATE counters SET n = n + 10 WHERE id = ?", dollar), 3); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var n int64
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
	t.Logf("read in %s", took.Round(time.Microsecond))
}

func TestTxOwnLockSQLite(t *testing.T) {
	testTxOwnLock(t, "sqlite3", sqliteDSN(t, "txlock"), sql.LevelDefault, false)
}

func TestTxOwnLockPostgresRepeatableRead(t *testing.T) {
	testTxOwnLock(t, "pgx", pgSchema(t, "txlock"), sql.LevelRepeatableRead, true)
}
