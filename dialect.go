package writeback

import (
	"context"
	"database/sql/driver"

	"github.com/writeback-go/writeback/internal/sqlparse"
)

// flushOp is what a flushed row does to the database.
type flushOp uint8

const (
	flushUpdate flushOp = iota // UPDATE t SET ... WHERE key = ...
	flushInsert                // INSERT INTO t (cols) VALUES (...)
)

// flushGroup is rows of one table that share one statement shape, so one
// statement form writes them all.
type flushGroup struct {
	schema *sqlparse.Ident // nil unless the application wrote schema.table
	table  sqlparse.Ident
	op     flushOp
	// cols: for an UPDATE the SET columns, for an INSERT the inserted columns.
	cols []sqlparse.Ident
	// delta[i] (UPDATE only) says cols[i] is written as col = col + v; otherwise col = v.
	delta []bool
	// keyCols is the table's key, in the rule's order, as the application wrote it.
	keyCols []sqlparse.Ident
	// rows holds, for an UPDATE, the values of cols followed by the values of
	// keyCols; for an INSERT, the values of cols. Values are normalized Go
	// values: nil, int64, float64, bool, string, []byte, time.Time, or a
	// deep-copied slice (arrays). A delta is an int64, a float64 or a decimal
	// string; it may be negative.
	rows [][]any
	// style is the placeholder syntax the application used for this table.
	style sqlparse.ParamStyle
}

// dialect writes flush groups into a database. Implementations hold no lock of
// the buffer: they are called by the flusher with rows already taken out.
type dialect interface {
	// name is what logs and Stats call the dialect.
	name() string
	// writeTx writes every group in one transaction on conn, at most batch
	// rows a statement, then runs inTx (when not nil) in the same
	// transaction, and commits. It returns, for each group, the indices of
	// UPDATE rows that matched no row in the database (nil for inserts).
	// On error nothing was committed.
	writeTx(ctx context.Context, conn driver.Conn, groups []*flushGroup, batch int, inTx func(exec txExec) error) (noMatch [][]int, err error)
}

// txExec runs one statement inside a flush transaction: how the journal's
// checkpoint commits with the rows it covers. Its placeholders are $1, $2...
// on PostgreSQL and ? elsewhere; on PostgreSQL args may be slices (arrays).
type txExec func(query string, args ...any) error
