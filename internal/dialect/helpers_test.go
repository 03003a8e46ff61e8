package dialect

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"testing"

	"github.com/writeback-go/writeback/internal/sqlparse"
	"github.com/writeback-go/writeback/internal/testdb"
)

// Helpers the tests of every dialect share: a connection, a flush
// transaction or a COMMIT resolver on it, and a query's rows as lines.

// testConn returns a connection of db, closed when the test ends.
func testConn(tb testing.TB, db *sql.DB) *sql.Conn {
	tb.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// writeConn runs w.WriteTx on c's driver connection: one flush transaction
// of groups, batch rows a statement, with inTx run inside it.
func writeConn(ctx context.Context, tb testing.TB, c *sql.Conn, w Writer, batch int, inTx func(exec Exec) error, groups ...*Group) ([][]int, error) {
	tb.Helper()
	var nm [][]int
	var werr error
	if err := c.Raw(func(dc any) error {
		nm, werr = w.WriteTx(ctx, dc.(driver.Conn), groups, batch, inTx)
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return nm, werr
}

// flushDB runs one flush transaction of groups through w on a connection
// of db of its own, closed afterwards.
func flushDB(tb testing.TB, db *sql.DB, w Writer, batch int, groups ...*Group) ([][]int, error) {
	tb.Helper()
	return flushDBTx(context.Background(), tb, db, w, batch, nil, groups...)
}

// flushDBTx is flushDB in ctx, with inTx run inside the transaction.
func flushDBTx(ctx context.Context, tb testing.TB, db *sql.DB, w Writer, batch int, inTx func(exec Exec) error, groups ...*Group) ([][]int, error) {
	tb.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	return writeConn(ctx, tb, c, w, batch, inTx, groups...)
}

// resolver is a resolver of a lost COMMIT's outcome, as the dialects make
// them.
type resolver = func(ctx context.Context, conn driver.Conn) (committed, known bool, err error)

// resolveConn asks r on c's driver connection.
func resolveConn(tb testing.TB, c *sql.Conn, r resolver) (committed, known bool, err error) {
	tb.Helper()
	if rerr := c.Raw(func(dc any) error {
		committed, known, err = r(context.Background(), dc.(driver.Conn))
		return nil
	}); rerr != nil {
		tb.Fatal(rerr)
	}
	return
}

// queryLines runs q on db and returns a line for each row, as line makes
// it from the row (it scans the row itself).
func queryLines(tb testing.TB, db *sql.DB, q string, line func(rows *sql.Rows) (string, error)) []string {
	tb.Helper()
	rows, err := db.Query(q)
	if err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		s, err := line(rows)
		if err != nil {
			tb.Fatal(err)
		}
		got = append(got, s)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return got
}

// myOpen opens a fresh database (prefix, go-sql-driver/mysql's params) on
// the MySQL test server, closed when the test ends, and runs setup's
// statements in it.
func myOpen(tb testing.TB, prefix, params string, setup ...string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("mysql", testdb.MySQLDatabase(tb, prefix, params))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	for _, q := range setup {
		if _, err := db.Exec(q); err != nil {
			tb.Fatal(err)
		}
	}
	return db
}

// myIdent is an identifier as MySQL's classifier hands over a plain
// lower-case one.
func myIdent(s string) sqlparse.Ident { return sqlparse.Ident{Norm: s, Raw: s} }

// myIdents is myIdent of each name.
func myIdents(names ...string) []sqlparse.Ident {
	out := make([]sqlparse.Ident, len(names))
	for i, n := range names {
		out[i] = myIdent(n)
	}
	return out
}

// mySessionStatus is the counter name of SHOW SESSION STATUS on c.
func mySessionStatus(tb testing.TB, c *sql.Conn, name string) int64 {
	tb.Helper()
	var v string
	var n int64
	if err := c.QueryRowContext(context.Background(), "SHOW SESSION STATUS LIKE '"+name+"'").Scan(&v, &n); err != nil {
		tb.Fatal(err)
	}
	return n
}
