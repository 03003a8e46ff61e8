// Package dialect is what writeback knows of each base database: how its SQL
// reads (placeholders, quoting), whether a transaction must see every buffered
// write before it starts, how a flush transaction is written, and how its
// errors are classed. A connector decides its Dialect once, at open: by the
// base driver's package (pgx, lib/pq, go-sqlite3, go-sql-driver/mysql), or by the application's
// explicit choice for drivers that wrap another (otelsql over pgx). Nothing
// else in writeback looks at driver types.
//
// Implementations: postgres (native pgx batches and COPY when the connection
// is pgx's or wraps it, multi-row statements with placeholders through any
// driver otherwise), sqlite (one transaction, one prepared statement per
// shape), mysql (multi-row INSERTs, UPDATE ... JOIN a derived table of the
// rows) and generic (any database/sql driver, sqlmock included).
package dialect

import (
	"context"
	"database/sql/driver"
	"strings"

	"github.com/writeback-go/writeback/internal/sqlparse"
)

// Op is what a flushed row does to the database.
type Op uint8

const (
	Update Op = iota // UPDATE t SET ... WHERE key = ...
	Insert           // INSERT INTO t (cols) VALUES (...)
	// Upsert is INSERT INTO t (cols) VALUES (...) ON CONFLICT (key) DO
	// UPDATE SET ...: insert the row if its key is absent, else apply the
	// update part (Group.Upd*).
	Upsert
)

// Group is rows of one table that share one statement shape, so one
// statement form writes them all.
type Group struct {
	Schema *sqlparse.Ident // nil unless the application wrote schema.table
	Table  sqlparse.Ident
	Op     Op
	// Cols: for an UPDATE the SET columns, for an INSERT the inserted columns.
	Cols []sqlparse.Ident
	// Delta[i] (UPDATE only) says cols[i] is written as col = col + v; otherwise col = v.
	Delta []bool
	// Fn[i] (UPDATE only; nil when every column's is FnNone) is the
	// function cols[i] is written with: COALESCE(col, 0) + v with a delta,
	// GREATEST(col, v) or LEAST(col, v) without.
	Fn []ColFn
	// KeyCols is the table's key, in the rule's order, as the application wrote it.
	KeyCols []sqlparse.Ident
	// UpdCols and UpdDelta (UPSERT only) are the DO UPDATE SET columns and
	// whether each is written as col = col + v.
	UpdCols  []sqlparse.Ident
	UpdDelta []bool
	// Rows holds, for an UPDATE, the values of cols followed by the values of
	// keyCols; for an INSERT, the values of cols; for an UPSERT, the values
	// of cols, then of updCols, then of keyCols. Values are normalized Go
	// values: nil, int64, float64, bool, string, []byte, time.Time, or a
	// deep-copied slice (arrays). A delta is an int64, a float64 or a decimal
	// string; it may be negative.
	Rows [][]any
	// Style is the placeholder syntax the application used for this table.
	Style sqlparse.ParamStyle
	// OrderBy (UPDATE and UPSERT; "" for none) is the normalized name of
	// the table's order_by column. Where a row assigns it, the row's
	// assignments apply only where the stored value is NULL or not newer
	// than the row's (order.go); its deltas and functions always apply.
	OrderBy string
}

// Writer writes flush groups into a database on one connection.
// Implementations hold no lock of the buffer: they are called by a flush
// worker with rows already taken out, never by two goroutines at once.
type Writer interface {
	// Name is what logs and Stats call the dialect.
	Name() string
	// WriteTx writes every group in one transaction on conn, at most batch
	// rows a statement, then runs inTx (when not nil) in the same
	// transaction, and commits. It returns, for each group, the indices of
	// UPDATE rows that matched no row in the database (nil for inserts).
	// On error nothing was committed.
	WriteTx(ctx context.Context, conn driver.Conn, groups []*Group, batch int, inTx func(exec Exec) error) (noMatch [][]int, err error)
}

// Exec runs one statement inside a flush transaction: how the journal's
// checkpoint commits with the rows it covers. Its placeholders are $1, $2...
// on PostgreSQL and ? elsewhere; on PostgreSQL args may be slices (arrays).
type Exec func(query string, args ...any) error

// writeInsertInto writes "INSERT INTO table (c1, c2, ...)" with the
// columns as the statement spelled them: the head every dialect's INSERT
// and upsert flush statements share.
func writeInsertInto(sb *strings.Builder, table string, cols []sqlparse.Ident) {
	sb.WriteString("INSERT INTO ")
	sb.WriteString(table)
	sb.WriteString(" (")
	for i, c := range cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(c.Raw)
	}
	sb.WriteByte(')')
}
