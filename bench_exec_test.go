package writeback

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"testing"
)

// BenchmarkBufferedExecDriver is the cost of one buffered counter UPDATE on
// the wrapped driver connection itself, without database/sql's pool around
// it and with no flush during the run (max_loss 1h): what the driver adds.
func BenchmarkBufferedExecDriver(b *testing.B) {
	ctx := context.Background()
	dsn := sqliteDSN(b, "bx")
	direct, err := sql.Open("sqlite3", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Close()
	execAll(b, direct, "CREATE TABLE counters (id INTEGER PRIMARY KEY, views INTEGER NOT NULL)")
	for i := 0; i < 1000; i++ {
		if _, err := direct.Exec("INSERT INTO counters (id, views) VALUES (?, 0)", i); err != nil {
			b.Fatal(err)
		}
	}
	rules := mustRules(b, "tables:\n  counters:\n    mode: back\n    key: [id]\n    max_loss: 1h\n    max_dirty: 100000\n")
	base, err := baseConnector("sqlite3", dsn)
	if err != nil {
		b.Fatal(err)
	}
	c, err := NewConnector(base, rules)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	conn, err := c.Connect(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ec := conn.(driver.ExecerContext)
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
