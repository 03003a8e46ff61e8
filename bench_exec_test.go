package writeback

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkBufferedExecDriver is the cost of one buffered counter UPDATE on
// the wrapped driver connection itself, without database/sql's pool around
// it and with no flush during the run (max_loss 1h): what the driver adds.
func BenchmarkBufferedExecDriver(b *testing.B) {
	ctx := context.Background()
	var fill strings.Builder
	fill.WriteString("CREATE TABLE counters (id INTEGER PRIMARY KEY, views INTEGER NOT NULL)")
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&fill, "; INSERT INTO counters (id, views) VALUES (%d, 0)", i)
	}
	_, conn := sqliteDriverConn(b, "bx", "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n    max_dirty: 100000\n", fill.String())
	var ec driver.ExecerContext = conn
	const q = "UPDATE counters SET views = views + 1 WHERE id = ?"
	args := []driver.NamedValue{{Ordinal: 1, Value: int64(0)}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		args[0].Value = int64(i % 1000)
		if _, err := ec.ExecContext(ctx, q, args); err != nil {
			b.Fatal(err)
		}
	}
}

// noopDriver answers every Exec with one row affected and does nothing
// else: database/sql over it is the floor of a statement's cost through
// database/sql (pool, argument conversion, result), whatever the driver.
type noopDriver struct{}

type noopConn struct{}

func (noopDriver) Open(string) (driver.Conn, error) { return noopConn{}, nil }

func (noopConn) Prepare(string) (driver.Stmt, error) { return nil, driver.ErrSkip }
func (noopConn) Close() error                        { return nil }
func (noopConn) Begin() (driver.Tx, error)           { return nil, driver.ErrSkip }
func (noopConn) ExecContext(context.Context, string, []driver.NamedValue) (driver.Result, error) {
	return driver.RowsAffected(1), nil
}

func init() { sql.Register("writeback-bench-noop", noopDriver{}) }

// BenchmarkBufferedExecDB is one buffered counter UPDATE through
// database/sql, as an application sends it (db.ExecContext with an int64
// key over 1000 keys, one goroutine, max_loss 1h so nothing flushes during
// the run), next to the same call on a driver that does nothing: the
// difference is what writeback adds to database/sql's own cost.
//
//	go test -run '^$' -bench BufferedExecDB -benchtime 1000000x -benchmem .
func BenchmarkBufferedExecDB(b *testing.B) {
	ctx := context.Background()
	const q = "UPDATE counters SET views = views + 1 WHERE id = ?"
	run := func(b *testing.B, db *sql.DB) {
		db.SetMaxIdleConns(1)
		// Warm up: the statement's classification, the connection and
		// every key's row, so the timed loop only coalesces.
		for i := 0; i < benchCounterKeys; i++ {
			if _, err := db.ExecContext(ctx, q, int64(i)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := db.ExecContext(ctx, q, int64(i%benchCounterKeys)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("sql-noop-driver", func(b *testing.B) {
		db, err := sql.Open("writeback-bench-noop", "")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		run(b, db)
	})
	b.Run("writeback", func(b *testing.B) {
		dsn := sqliteDSN(b, "bxdb")
		direct, err := sql.Open("sqlite3", dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer direct.Close()
		benchFill(b, direct, false, "counters", benchCounterKeys)
		db := openWriteback(b, "sqlite3", dsn, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n    max_dirty: 100000\n")
		defer func() {
			if err := db.Close(); err != nil {
				b.Error(err)
			}
		}()
		run(b, db)
		b.StopTimer()
		if st := benchStats(b, db); st.Dirty != benchCounterKeys {
			b.Fatalf("%d rows dirty, want %d: the run was not all buffered", st.Dirty, benchCounterKeys)
		}
	})
}
