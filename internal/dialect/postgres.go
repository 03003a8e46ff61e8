package dialect

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// This file is the PostgreSQL dialect: it writes flush groups through the
// native *pgx.Conn behind a pgx stdlib connection, one column array per
// parameter, so a statement carries `batch` rows whatever the table's width:
//
//	UPDATE tbl AS t SET c = v.c0, d = t.d + v.c1
//	  FROM unnest($1::T0[], $2::T1[], $3::K0[]) AS v(c0, c1, k0) WHERE t.k = v.k0
//	INSERT INTO tbl (a, b) SELECT v.c0, v.c1 FROM unnest($1::T0[], $2::T1[]) AS v(c0, c1)
//
// The database's column types decide how values are sent, not the Go values:
// each array is cast to the column's (domain-resolved) type, so pgx encodes
// every element with the same codec it would use for a single-row
// `UPDATE tbl SET c = $1`. Values that pgx would send as text in a single-row
// statement (a string for a numeric, uuid, timestamptz, enum... column), and
// columns whose type cannot travel as an array element (array types, which
// unnest would flatten, composites, which it would expand, types pgx does not
// know), travel as text[] and are cast per element after unnest, which runs the
// column type's own input function, exactly as a text parameter would.
//
// An UPDATE whose command tag counts fewer rows than it carried is followed,
// in the same transaction, by a query for the keys that match no row; a full
// count (the common case) costs nothing more. INSERT groups go by COPY when
// statements are large enough for COPY to be the faster and COPY would do
// exactly what INSERT does (see pgWriter.insert).

// pgFlushTimeout bounds the ROLLBACK sent after a failed flush, which runs even
// when the flush's own context has ended.
const pgFlushTimeout = 5 * time.Second

// pgWriter writes flush groups into PostgreSQL through pgx. It caches, per
// table, the columns' types; the cache is guarded by mu, so one value may serve
// several flusher connections of one database.
type pgWriter struct {
	mu     sync.Mutex
	tables map[string]*pgTable // by pgTableName
	// copyMinRows is pgCopyMinRows; tests set it to force either insert path.
	// copyMaxRows is pgCopyMaxRows; tests lower it to see COPYs split.
	copyMinRows, copyMaxRows int
}

// pgTable is what the dialect knows of one table's columns.
type pgTable struct {
	// copyOK: the relation is a plain or partitioned table without rewrite
	// rules or row-level security, so COPY does what INSERT would do.
	copyOK bool
	// ident is the relation regclass resolved, for COPY, which takes
	// identifiers rather than the application's text.
	ident pgx.Identifier
	cols  map[string]*pgColumn // by attname (the case-resolved name)
}

// pgColumn is one column's type, domains resolved to their base type.
type pgColumn struct {
	base     uint32 // the column's type, or the type under its domains
	baseName string // schema-qualified, quoted name of base, valid SQL in any search_path
	kind     byte   // pg_type.typtype of base: b(ase), c(omposite), e(num), r(ange), m(ultirange)
	category byte   // pg_type.typcategory of base: 'A' for arrays
	array    uint32 // the array type of base (pg_type.typarray), 0 when none
	// alwaysIdentity: GENERATED ALWAYS AS IDENTITY, which INSERT refuses a
	// value for and COPY silently accepts.
	alwaysIdentity bool
}

// newPgWriter returns a PostgreSQL dialect with an empty type cache.
func newPgWriter() *pgWriter {
	return &pgWriter{tables: map[string]*pgTable{}, copyMinRows: pgCopyMinRows, copyMaxRows: pgCopyMaxRows}
}

// pgxConner is what a pgx stdlib connection (*stdlib.Conn) offers to reach
// the native connection.
type pgxConner interface{ Conn() *pgx.Conn }

// rawConner is what a driver that wraps another offers to reach the
// connection it wraps (otelsql's connection has it).
type rawConner interface{ Raw() driver.Conn }

// maxWrapDepth bounds the walk through wrapping connections, which a
// connection that returned itself from Raw would make endless.
const maxWrapDepth = 8

// pgxOf returns the pgx stdlib connection conn is, or wraps (through Raw),
// whose native *pgx.Conn the PostgreSQL dialect can use; nil when there is
// none. A flush through it bypasses the wrappers (their tracing, metrics).
func pgxOf(conn driver.Conn) pgxConner {
	for i := 0; i < maxWrapDepth && conn != nil; i++ {
		if pc, ok := conn.(pgxConner); ok {
			return pc
		}
		r, ok := conn.(rawConner)
		if !ok {
			return nil
		}
		conn = r.Raw()
	}
	return nil
}

// isPgxConn reports whether conn is, or wraps, a pgx stdlib connection.
func isPgxConn(conn driver.Conn) bool {
	return pgxOf(conn) != nil
}

func (d *pgWriter) Name() string { return "postgres" }

// pgWriteGroups writes each group that has rows with write, in order, and
// returns each one's unmatched rows; both PostgreSQL writers use it. A
// failure names the group's table; a table whose schema changed is
// forgotten, so its column types are read again.
func pgWriteGroups(ctx context.Context, groups []*Group, write func(context.Context, *Group) ([]int, error), forget func(table string)) ([][]int, error) {
	noMatch := make([][]int, len(groups))
	for gi, g := range groups {
		if len(g.Rows) == 0 {
			continue
		}
		var err error
		if noMatch[gi], err = write(ctx, g); err != nil {
			if pgSchemaChanged(err) {
				forget(pgTableName(g))
			}
			if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
				// Say why a statement failed when the flush was cut short, so
				// the flusher sees a context error.
				err = fmt.Errorf("%w (%w)", err, cerr)
			}
			return nil, fmt.Errorf("writeback: postgres %s %s: %w", pgOpName(g.Op), pgTableName(g), err)
		}
	}
	return noMatch, nil
}

// WriteTx writes every group in one transaction on conn's native pgx
// connection, at most batch rows a statement, and commits. See dialect.
func (d *pgWriter) WriteTx(ctx context.Context, conn driver.Conn, groups []*Group, batch int, inTx func(exec Exec) error) (noMatch [][]int, err error) {
	pc := pgxOf(conn)
	if pc == nil {
		return nil, fmt.Errorf("writeback: postgres dialect needs a pgx stdlib connection, got %T", conn)
	}
	native := pc.Conn()
	if native == nil {
		return nil, errors.New("writeback: postgres dialect: pgx stdlib connection has no native connection")
	}
	if batch <= 0 {
		batch = 1000
	}
	w := pgTx{d: d, conn: native, mode: pgExecMode(native), batch: batch}
	tx, err := native.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("writeback: postgres begin: %w", err)
	}
	defer func() {
		if err != nil {
			// The flush's ctx may be what ended it: roll back on a context of
			// our own, or the connection would be left inside the transaction.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pgFlushTimeout)
			_ = tx.Rollback(rctx)
			cancel()
		}
	}()
	w.tx = tx
	if noMatch, err = pgWriteGroups(ctx, groups, w.group, d.forget); err != nil {
		return nil, err
	}
	if inTx != nil {
		err = inTx(func(query string, args ...any) error {
			_, err := tx.Exec(ctx, query, append([]any{w.mode}, args...)...)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("writeback: postgres checkpoint: %w", err)
		}
	}
	// The transaction's id, so that a COMMIT whose answer is lost (the
	// connection cut after the server committed) can be resolved with
	// txid_status instead of writing the rows, deltas included, twice; and
	// the server's start time, because a crash can hand the id out again.
	var xid int64
	var started time.Time
	if err = tx.QueryRow(ctx, "SELECT txid_current(), pg_postmaster_start_time()").Scan(&xid, &started); err != nil {
		return nil, fmt.Errorf("writeback: postgres txid: %w", err)
	}
	if err = tx.Commit(ctx); err != nil {
		err = fmt.Errorf("writeback: postgres commit: %w", err)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			// No answer from the server: it may have committed.
			err = &CommitUnknownError{Err: err, Resolve: pgTxidStatus(xid, started)}
		}
		return nil, err
	}
	return noMatch, nil
}

// pgTxidStatus returns a CommitUnknownError resolver that asks the server,
// on a new connection, what became of transaction xid, begun on a server
// started at started.
//
// An id "in the future" (SQLSTATE 22023) was never committed: the server
// crashed before the COMMIT record was durable, and the id was not used. A
// server that restarted since can have handed the id to another
// transaction: there "aborted" is still the truth (a durable commit would
// have kept the id from being given out again), but "committed" or "in
// progress" may be another transaction's, and the answer is
// ErrCommitAmbiguous.
func pgTxidStatus(xid int64, started time.Time) func(ctx context.Context, conn driver.Conn) (committed, known bool, err error) {
	return func(ctx context.Context, conn driver.Conn) (bool, bool, error) {
		pc := pgxOf(conn)
		if pc == nil || pc.Conn() == nil {
			return false, false, fmt.Errorf("writeback: postgres dialect needs a pgx stdlib connection, got %T", conn)
		}
		var status *string
		var now time.Time
		err := pc.Conn().QueryRow(ctx, "SELECT txid_status($1), pg_postmaster_start_time()", xid).Scan(&status, &now)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "22023" {
			return false, true, nil // "transaction ID ... is in the future": never committed
		}
		if err != nil {
			return false, false, err
		}
		restarted := !now.Equal(started)
		switch {
		case status == nil: // too old to know: cannot happen within a flush's retries
			return false, false, fmt.Errorf("%w: txid_status(%d) is unknown", ErrCommitAmbiguous, xid)
		case *status == "aborted":
			return false, true, nil
		case restarted:
			return false, false, fmt.Errorf("%w: the server restarted since transaction %d began, and the id may have been given out again (txid_status says %s)", ErrCommitAmbiguous, xid, *status)
		case *status == "committed":
			return true, true, nil
		}
		return false, false, nil // in progress: ask again
	}
}

// pgOpName names an operation in errors.
func pgOpName(op Op) string {
	switch op {
	case Insert:
		return "insert into"
	case Upsert:
		return "upsert into"
	}
	return "update"
}

// pgExecMode picks how statements run. The cached modes keep their prepared
// statement or description across flushes (our SQL text does not change with
// the batch size, so one entry per group shape); the others would not work
// here: Exec and simple protocol infer parameter types from Go values, which
// cannot type an array of interface values, so they get DescribeExec.
func pgExecMode(c *pgx.Conn) pgx.QueryExecMode {
	switch m := c.Config().DefaultQueryExecMode; m {
	case pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe:
		return m
	}
	return pgx.QueryExecModeDescribeExec
}

// pgSchemaChanged reports whether err suggests the table is not what the
// type cache says (a column or table gone, a type changed), so the cache entry
// should be reloaded on the next try.
func pgSchemaChanged(err error) bool {
	if code, ok := SQLState(err); ok {
		switch code {
		case "42703", // undefined_column
			"42P01", // undefined_table
			"42804", // datatype_mismatch
			"42883", // undefined_function (an operator on a changed type)
			"42846", // cannot_coerce
			"42704", // undefined_object (a dropped type)
			"0A000": // feature_not_supported: "cached plan must not change result type"
			return true
		}
		return false
	}
	return errors.Is(err, errPgNoColumn)
}

// errPgNoColumn is returned when a group names a column the table does not have.
var errPgNoColumn = errors.New("no such column")

// pgTableName is the table as the application wrote it, schema-qualified when
// it was: the text both emitted SQL and the regclass lookup use.
func pgTableName(g *Group) string {
	if g.Schema != nil {
		return g.Schema.Raw + "." + g.Table.Raw
	}
	return g.Table.Raw
}

func (d *pgWriter) forget(table string) {
	d.mu.Lock()
	delete(d.tables, table)
	d.mu.Unlock()
}

// pgColumnsSQL reads a table's columns, their types with domains resolved to
// the base type (deepest level of the recursion), and whether COPY may be used.
// $1 is the table's name as the application wrote it: regclass input applies
// the quoting, case folding and search_path rules the statement would.
const pgColumnsSQL = `WITH RECURSIVE a AS (
	SELECT attnum, attname, atttypid, attidentity FROM pg_catalog.pg_attribute
	WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
), b(attnum, typ, depth) AS (
	SELECT attnum, atttypid, 0 FROM a
	UNION ALL
	SELECT b.attnum, t.typbasetype, b.depth + 1
	FROM b JOIN pg_catalog.pg_type t ON t.oid = b.typ WHERE t.typtype = 'd'
)
SELECT DISTINCT ON (a.attnum) a.attname::text, b.typ::int8,
	quote_ident(n.nspname) || '.' || quote_ident(t.typname),
	t.typtype::text, t.typcategory::text, t.typarray::int8, a.attidentity = 'a',
	c.relkind IN ('r', 'p') AND NOT c.relhasrules AND NOT c.relrowsecurity,
	cn.nspname::text, c.relname::text
FROM a JOIN b USING (attnum)
JOIN pg_catalog.pg_type t ON t.oid = b.typ
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
JOIN pg_catalog.pg_class c ON c.oid = $1::regclass
JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
ORDER BY a.attnum, b.depth DESC`

// table returns the cached column types of g's table, loading them on first use.
func (d *pgWriter) table(ctx context.Context, tx pgx.Tx, g *Group) (*pgTable, error) {
	name := pgTableName(g)
	d.mu.Lock()
	t := d.tables[name]
	d.mu.Unlock()
	if t != nil {
		return t, nil
	}
	rows, err := tx.Query(ctx, pgColumnsSQL, name)
	if err != nil {
		return nil, err
	}
	t = &pgTable{cols: map[string]*pgColumn{}}
	for rows.Next() {
		var (
			attname, baseName, kind, category, nsp, rel string
			base, array                                 int64
			always                                      bool
		)
		if err := rows.Scan(&attname, &base, &baseName, &kind, &category, &array, &always, &t.copyOK, &nsp, &rel); err != nil {
			rows.Close()
			return nil, err
		}
		t.ident = pgx.Identifier{nsp, rel}
		t.cols[attname] = &pgColumn{
			base: uint32(base), baseName: baseName,
			kind: kind[0], category: category[0], array: uint32(array),
			alwaysIdentity: always,
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.tables[name] = t
	d.mu.Unlock()
	return t, nil
}

// pgColSQL is how one column's values appear in the statement: a parameter
// array of typ[], unnested, and, when cast is not empty, each element cast to
// cast (the values then travel as text).
type pgColSQL struct {
	typ  string
	cast string
}

// pgTextType is the array element type of columns that travel as text.
const pgTextType = "pg_catalog.text"

// pgCol is one column of a group as the writer sends it.
type pgCol struct {
	sql  pgColSQL
	text bool   // values are converted to their text form (see pgWriter.gather)
	oid  uint32 // the type whose text encoding pgx uses for text values
	idx  int    // position of the column's value in each row
	vals []any  // the current statement's values, reused between statements
}

// Type OIDs the dialect treats specially.
const (
	pgOIDInt2    = 21
	pgOIDInt4    = 23
	pgOIDText    = 25
	pgOIDVarchar = 1043
	pgOIDBpchar  = 1042
	pgOIDName    = 19
	pgOIDJSON    = 114
	pgOIDJSONB   = 3802
)

// pgTextLike reports whether a string sent in pgx's binary format for the
// type is the same bytes as the text a single-row statement would send.
func pgTextLike(oid uint32) bool {
	switch oid {
	case pgOIDText, pgOIDVarchar, pgOIDBpchar, pgOIDName, pgOIDJSON, pgOIDJSONB:
		return true
	}
	return false
}

// pgPlanCol decides how the values of one column of a group travel: as an
// array of the column's base type (pgx's binary codec, the fast path) or as
// text cast per element after unnest. It looks at the group's values (column
// idx of rows), because a string for a non-text type must reach the server
// as text, to be parsed by PostgreSQL as a single-row statement's would; m
// is the connection's type map, which must know the type and its array for
// the binary path.
func pgPlanCol(m *pgtype.Map, c *pgColumn, delta bool, rows [][]any, idx int) pgCol {
	col := pgCol{idx: idx, oid: c.base}
	binary := c.kind != 'c' && c.category != 'A' && c.array != 0
	if binary {
		_, knownElem := m.TypeForOID(c.base)
		_, knownArray := m.TypeForOID(c.array)
		binary = knownElem && knownArray
	}
	if binary && !pgTextLike(c.base) {
		for _, r := range rows {
			if _, isString := r[idx].(string); isString {
				binary = false
				break
			}
		}
	}
	typ := c.baseName
	if delta && (c.base == pgOIDInt2 || c.base == pgOIDInt4) {
		// A coalesced delta may exceed the column's range while the result
		// does not: add in bigint, the assignment range-checks the sum.
		typ = "pg_catalog.int8"
	}
	if binary {
		col.sql = pgColSQL{typ: typ}
	} else {
		col.text = true
		col.sql = pgColSQL{typ: pgTextType, cast: typ}
	}
	return col
}

// pgTx is the state of one writeTx call.
type pgTx struct {
	d     *pgWriter
	conn  *pgx.Conn
	tx    pgx.Tx
	mode  pgx.QueryExecMode
	batch int
	args  []any // reused argument list: mode, then one array per column
	tbuf  []byte
}

// group writes one flush group, batch rows a statement, and returns the
// indices of UPDATE rows that matched nothing.
func (w *pgTx) group(ctx context.Context, g *Group) ([]int, error) {
	t, err := w.d.table(ctx, w.tx, g)
	if err != nil {
		return nil, err
	}
	m := w.conn.TypeMap()
	names := g.Cols
	switch g.Op {
	case Update:
		names = append(append(make([]sqlparse.Ident, 0, len(g.Cols)+len(g.KeyCols)), g.Cols...), g.KeyCols...)
	case Upsert:
		names = append(append(append(make([]sqlparse.Ident, 0, len(g.Cols)+len(g.UpdCols)+len(g.KeyCols)), g.Cols...), g.UpdCols...), g.KeyCols...)
	}
	for i, r := range g.Rows {
		if len(r) != len(names) {
			return nil, fmt.Errorf("row %d has %d values for %d columns", i, len(r), len(names))
		}
	}
	for _, id := range names {
		if t.cols[id.Norm] == nil {
			// The column may be newer than the cache: reload once.
			w.d.forget(pgTableName(g))
			if t, err = w.d.table(ctx, w.tx, g); err != nil {
				return nil, err
			}
			break
		}
	}
	if g.Op == Upsert {
		for _, id := range names {
			if t.cols[id.Norm] == nil {
				return nil, fmt.Errorf("column %s: %w", id.Raw, errPgNoColumn)
			}
		}
		return nil, w.upsert(ctx, g, t)
	}
	cols := make([]pgCol, len(names))
	for i, id := range names {
		c := t.cols[id.Norm]
		if c == nil {
			return nil, fmt.Errorf("column %s: %w", id.Raw, errPgNoColumn)
		}
		delta := g.Op == Update && i < len(g.Cols) && i < len(g.Delta) && g.Delta[i]
		cols[i] = pgPlanCol(m, c, delta, g.Rows, i)
	}
	sqls := make([]pgColSQL, len(cols))
	for i := range cols {
		sqls[i] = cols[i].sql
	}
	if g.Op == Insert {
		return nil, w.insert(ctx, g, t, cols, sqls)
	}
	return w.update(ctx, g, cols, sqls)
}

// update runs the group's UPDATEs and finds the rows that matched nothing.
func (w *pgTx) update(ctx context.Context, g *Group, cols []pgCol, sqls []pgColSQL) ([]int, error) {
	query := pgUpdateSQL(g, sqls[:len(g.Cols)], sqls[len(g.Cols):])
	missing := pgMissingSQL(g, sqls[len(g.Cols):])
	// If a SET column is also a key column, the keys can only be checked
	// before the UPDATE moves them.
	checkFirst := false
	for _, c := range g.Cols {
		for _, k := range g.KeyCols {
			if c.Norm == k.Norm {
				checkFirst = true
			}
		}
	}
	var noMatch []int
	for off := 0; off < len(g.Rows); off += w.batch {
		end := min(off+w.batch, len(g.Rows))
		args, err := w.gather(g.Rows[off:end], cols)
		if err != nil {
			return nil, err
		}
		keyArgs := append([]any{w.mode}, args[1+len(g.Cols):]...)
		if checkFirst {
			if noMatch, err = w.missing(ctx, missing, keyArgs, off, noMatch); err != nil {
				return nil, err
			}
		}
		tag, err := w.tx.Exec(ctx, query, args...)
		if err != nil {
			return nil, err
		}
		// Every key exists (the common case) when the UPDATE touched every
		// row: only a short count costs a query to say which keys missed.
		if !checkFirst && tag.RowsAffected() < int64(end-off) {
			if noMatch, err = w.missing(ctx, missing, keyArgs, off, noMatch); err != nil {
				return nil, err
			}
		}
	}
	return noMatch, nil
}

// missing appends to noMatch the group indices (off + position in the batch)
// of the keys in keyArgs that match no row.
func (w *pgTx) missing(ctx context.Context, query string, keyArgs []any, off int, noMatch []int) ([]int, error) {
	rows, err := w.tx.Query(ctx, query, keyArgs...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		noMatch = append(noMatch, off+int(n)-1)
	}
	return noMatch, rows.Err()
}

// insert runs the group's INSERTs: by COPY when the group has rows enough
// for COPY to be the faster (pgCopyMinRows), every column travels in
// binary and the table takes COPY as it would INSERT; otherwise by
// INSERT ... SELECT FROM unnest, batch rows a statement.
func (w *pgTx) insert(ctx context.Context, g *Group, t *pgTable, cols []pgCol, sqls []pgColSQL) error {
	if t.copyOK && len(g.Rows) >= w.d.copyMinRows {
		useCopy := true
		for i, c := range g.Cols {
			// A text column needs PostgreSQL to parse the value, which
			// pgx's binary COPY would do itself; an always-identity
			// column must refuse the value as INSERT does.
			useCopy = useCopy && !cols[i].text && !t.cols[c.Norm].alwaysIdentity
		}
		if useCopy {
			return w.copy(ctx, g, t)
		}
	}
	query := pgInsertSQL(g, sqls)
	for off := 0; off < len(g.Rows); off += w.batch {
		end := min(off+w.batch, len(g.Rows))
		args, err := w.gather(g.Rows[off:end], cols)
		if err != nil {
			return err
		}
		if _, err := w.tx.Exec(ctx, query, args...); err != nil {
			return err
		}
	}
	return nil
}

// pgCopyMinRows is the fewest rows a COPY statement must carry for the
// dialect to insert by COPY. A COPY costs about two round trips and a
// goroutine more than an INSERT, and carries rows faster: measured here
// (BenchmarkPgFlushInsert), COPY of 1000 rows was ~20% slower than
// INSERT ... SELECT FROM unnest, of 2000-3000 rows even, of 10000 rows
// 1.5-2.5 times faster.
const pgCopyMinRows = 5000

// pgCopyMaxRows is the most rows one COPY statement carries. A COPY costs
// a fixed amount to start and finish (pgx describes the table first), and
// streams its rows: measured here (BenchmarkFlushPaired/pg/insert), 100k
// rows in COPYs of 5000 rows ran at 0.62-0.68 of one COPY of all of them,
// in COPYs of 10000 at 0.80-0.91, in one at 0.83-1.07. The bound keeps one
// statement to about a quarter of a second here, well inside a
// statement_timeout.
const pgCopyMaxRows = 100000

// copy writes an INSERT group with COPY, up to copyMaxRows rows a COPY
// statement, whatever batch says: batch bounds the arrays an INSERT
// statement is built from, and COPY streams its rows instead (the rows are
// locked until the flush commits either way). pgx
// quotes the identifiers it is given, so COPY names the relation by the
// schema and name regclass resolved and the columns by their attnames (the
// case-resolved names the group was matched by), not by the application's text.
func (w *pgTx) copy(ctx context.Context, g *Group, t *pgTable) error {
	names := make([]string, len(g.Cols))
	for i, c := range g.Cols {
		names[i] = c.Norm
	}
	chunk := w.d.copyMaxRows
	for off := 0; off < len(g.Rows); off += chunk {
		end := min(off+chunk, len(g.Rows))
		if _, err := w.tx.CopyFrom(ctx, t.ident, names, pgx.CopyFromRows(g.Rows[off:end])); err != nil {
			return pgCopyError(ctx, err)
		}
	}
	return nil
}

// pgCopyFailed is how the server reports a COPY the client aborted: pgx
// sends CopyFail with its own error when it cannot encode a value.
const pgCopyFailed = "COPY from stdin failed: "

// pgCopyError turns the server's report of a COPY that pgx aborted because
// a value would not encode (SQLSTATE 57014, query_canceled, which reads as a
// transient error) back into the encoding error it is, as a single-row
// statement would have returned it: a plain, permanent error.
func pgCopyError(ctx context.Context, err error) error {
	var pe *pgconn.PgError
	if ctx.Err() == nil && errors.As(err, &pe) && pe.Code == "57014" && strings.HasPrefix(pe.Message, pgCopyFailed) {
		return fmt.Errorf("copy: %s", strings.TrimPrefix(pe.Message, pgCopyFailed))
	}
	return err
}

// gather turns rows into the statement's arguments: the exec mode, then one
// array per column. Binary columns pass the row values themselves: a
// FlatArray[any] makes pgx pick each element's encode plan by its Go type
// (the plan a single-row parameter would use) without reflecting on a slice.
func (w *pgTx) gather(rows [][]any, cols []pgCol) ([]any, error) {
	n := len(rows)
	w.args = append(w.args[:0], w.mode)
	for ci := range cols {
		c := &cols[ci]
		if cap(c.vals) < n {
			c.vals = make([]any, n)
		}
		vals := c.vals[:n]
		if !c.text {
			for i, r := range rows {
				vals[i] = r[c.idx]
			}
		} else {
			for i, r := range rows {
				v, err := w.text(c.oid, r[c.idx])
				if err != nil {
					return nil, err
				}
				vals[i] = v
			}
		}
		w.args = append(w.args, pgtype.FlatArray[any](vals))
	}
	return w.args, nil
}

// text returns v as a single-row text parameter of type oid would carry it:
// strings verbatim, NULL as nil, anything else in pgx's text encoding.
func (w *pgTx) text(oid uint32, v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	}
	buf, err := w.conn.TypeMap().Encode(oid, pgtype.TextFormatCode, v, w.tbuf[:0])
	if err != nil {
		return nil, err
	}
	if buf == nil {
		return nil, nil
	}
	w.tbuf = buf
	return string(buf), nil
}
