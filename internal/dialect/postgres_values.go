package dialect

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/writeback-go/writeback/internal/drivercall"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// This file is the PostgreSQL writer for connections that are not pgx's
// (lib/pq, or a wrapper that does not lead to pgx): it needs nothing but
// database/sql/driver, and writes many rows a statement with placeholders:
//
//	UPDATE tbl AS t SET c = v.c0, d = t.d + v.c1
//	  FROM (VALUES ($1::T0, $2::T1, $3::K0), ($4::T0, ...)) AS v(c0, c1, k0)
//	  WHERE t.k = v.k0
//	INSERT INTO tbl (a, b) VALUES ($1::A, $2::B), ($3::A, $4::B)
//
// Every placeholder is cast to its column's (domain-resolved) type, so the
// server gives it the type a single-row `UPDATE tbl SET c = $1` would, and
// the driver encodes each value exactly as it would for that statement.
// Deltas of smallint and integer columns are added in bigint, as the pgx
// writer does. A statement carries at most batch rows and at most
// pgMaxParams parameters (the protocol's limit). UPDATE rows that matched
// nothing are found as the pgx writer finds them: a count short of the rows
// sent costs a query for the keys that match no row.
//
// An UPDATE's rows go as one array a column instead of a VALUES list when
// every column's type can be an array element (see pgvSource), so that
// PostgreSQL joins them to the table by its key's index, as it does the pgx
// writer's statements:
//
//	UPDATE tbl AS t SET c = v.c0 FROM unnest((SELECT ARRAY[$1::T0, $3::T0]),
//	  (SELECT ARRAY[$2::K0, $4::K0])) AS v(c0, k0) WHERE t.k = v.k0
//
// A group of several full-size statements prepares the statement once:
// parsing thousands of placeholders costs more than the round trip.

// pgMaxParams is the most parameters one statement may carry: the
// protocol counts them in 16 bits.
const pgMaxParams = 65535

// pgValuesWriter writes flush groups into PostgreSQL through any
// database/sql driver. Like pgWriter it caches each table's column types,
// under mu.
type pgValuesWriter struct {
	mu     sync.Mutex
	tables map[string]*pgTable // by pgTableName
	// maxParams is pgMaxParams; tests lower it to cross statement limits.
	maxParams int
	// valuesOnly makes UPDATEs use VALUES lists, not arrays (tests).
	valuesOnly bool
}

// newPgValuesWriter returns a writer with an empty type cache.
func newPgValuesWriter() *pgValuesWriter {
	return &pgValuesWriter{tables: map[string]*pgTable{}, maxParams: pgMaxParams}
}

func (d *pgValuesWriter) Name() string { return "postgres" }

// WriteTx writes every group in one transaction on conn, at most batch
// rows a statement, runs inTx, and commits. A COMMIT without an answer is
// resolved by the transaction's id, as with pgx (pgTxidStatusSQL).
func (d *pgValuesWriter) WriteTx(ctx context.Context, conn driver.Conn, groups []*Group, batch int, inTx func(exec Exec) error) (noMatch [][]int, err error) {
	if batch <= 0 {
		batch = 1000
	}
	tx, err := drivercall.BeginTx(ctx, conn, driver.TxOptions{})
	if err != nil {
		return nil, fmt.Errorf("writeback: postgres begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	w := pgvTx{d: d, conn: conn, batch: batch}
	if noMatch, err = pgWriteGroups(ctx, groups, w.group, d.forget); err != nil {
		return nil, err
	}
	if inTx != nil {
		err = inTx(func(query string, args ...any) error {
			_, err := pgvExec(ctx, conn, query, pgvArgs(args))
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("writeback: postgres checkpoint: %w", err)
		}
	}
	// As in pgWriter.WriteTx: the id and the server's start time resolve a
	// COMMIT whose answer is lost. The start time travels as epoch text,
	// which no session setting (TimeZone, DateStyle) changes.
	row, err := pgvQueryRow(ctx, conn, "SELECT txid_current()::text, extract(epoch FROM pg_postmaster_start_time())::text", 2)
	if err != nil {
		return nil, fmt.Errorf("writeback: postgres txid: %w", err)
	}
	xid, started := pgvString(row[0]), pgvString(row[1])
	if err = tx.Commit(); err != nil {
		err = fmt.Errorf("writeback: postgres commit: %w", err)
		if _, answered := SQLState(err); !answered {
			// No answer from the server: it may have committed.
			err = &CommitUnknownError{Err: err, Resolve: pgTxidStatusSQL(xid, started)}
		}
		return nil, err
	}
	return noMatch, nil
}

// pgTxidStatusSQL is pgTxidStatus through any driver: see there for what
// each answer means.
func pgTxidStatusSQL(xid, started string) func(ctx context.Context, conn driver.Conn) (committed, known bool, err error) {
	return func(ctx context.Context, conn driver.Conn) (bool, bool, error) {
		row, err := pgvQueryRow(ctx, conn, "SELECT txid_status($1::int8), extract(epoch FROM pg_postmaster_start_time())::text", 2, xid)
		if code, _ := SQLState(err); code == "22023" {
			return false, true, nil // "transaction ID ... is in the future": never committed
		}
		if err != nil {
			return false, false, err
		}
		restarted := pgvString(row[1]) != started
		status, known := row[0], row[0] != nil
		switch {
		case !known:
			return false, false, fmt.Errorf("%w: txid_status(%s) is unknown", ErrCommitAmbiguous, xid)
		case pgvString(status) == "aborted":
			return false, true, nil
		case restarted:
			return false, false, fmt.Errorf("%w: the server restarted since transaction %s began, and the id may have been given out again (txid_status says %s)", ErrCommitAmbiguous, xid, pgvString(status))
		case pgvString(status) == "committed":
			return true, true, nil
		}
		return false, false, nil // in progress: ask again
	}
}

func (d *pgValuesWriter) forget(table string) {
	d.mu.Lock()
	delete(d.tables, table)
	d.mu.Unlock()
}

// table returns the cached column types of g's table, loading them on first
// use with pgColumnsSQL, the query pgWriter uses.
func (d *pgValuesWriter) table(ctx context.Context, conn driver.Conn, g *Group) (*pgTable, error) {
	name := pgTableName(g)
	d.mu.Lock()
	t := d.tables[name]
	d.mu.Unlock()
	if t != nil {
		return t, nil
	}
	rows, err := pgvQuery(ctx, conn, pgColumnsSQL, 10, name)
	if err != nil {
		return nil, err
	}
	t = &pgTable{cols: map[string]*pgColumn{}}
	for _, r := range rows {
		base, err1 := pgvInt(r[1])
		array, err2 := pgvInt(r[5])
		always, err3 := pgvBool(r[6])
		copyOK, err4 := pgvBool(r[7])
		kind, category := pgvString(r[3]), pgvString(r[4])
		if err := errors.Join(err1, err2, err3, err4); err != nil || kind == "" || category == "" {
			return nil, fmt.Errorf("reading the column types of %s: unexpected values %v (%v)", name, r, err)
		}
		t.copyOK = copyOK
		t.cols[pgvString(r[0])] = &pgColumn{
			base: uint32(base), baseName: pgvString(r[2]),
			kind: kind[0], category: category[0], array: uint32(array),
			alwaysIdentity: always,
		}
	}
	d.mu.Lock()
	d.tables[name] = t
	d.mu.Unlock()
	return t, nil
}

// pgvTx is the state of one WriteTx call.
type pgvTx struct {
	d     *pgValuesWriter
	conn  driver.Conn
	batch int
	args  []driver.NamedValue // reused argument list
}

// group writes one flush group and returns the indices of UPDATE rows that
// matched nothing.
func (w *pgvTx) group(ctx context.Context, g *Group) ([]int, error) {
	if g.Op == Upsert {
		// The update part as one prepared UPDATE, then one-row upserts for
		// the keys it matched nothing of (upsert.go).
		return nil, execUpsertGroup(ctx, w.conn, g, sqlparse.ParamDollar)
	}
	names := g.Cols
	if g.Op == Update {
		names = append(append(make([]sqlparse.Ident, 0, len(g.Cols)+len(g.KeyCols)), g.Cols...), g.KeyCols...)
	}
	for i, r := range g.Rows {
		if len(r) != len(names) {
			return nil, fmt.Errorf("row %d has %d values for %d columns", i, len(r), len(names))
		}
	}
	t, err := w.d.table(ctx, w.conn, g)
	if err != nil {
		return nil, err
	}
	for _, id := range names {
		if t.cols[id.Norm] == nil {
			// The column may be newer than the cache: reload once.
			w.d.forget(pgTableName(g))
			if t, err = w.d.table(ctx, w.conn, g); err != nil {
				return nil, err
			}
			break
		}
	}
	types := make([]string, len(names))
	for i, id := range names {
		c := t.cols[id.Norm]
		if c == nil {
			return nil, fmt.Errorf("column %s: %w", id.Raw, errPgNoColumn)
		}
		types[i] = c.baseName
		delta := g.Op == Update && i < len(g.Cols) && i < len(g.Delta) && g.Delta[i]
		if delta && (c.base == pgOIDInt2 || c.base == pgOIDInt4) {
			// A coalesced delta may exceed the column's range while the
			// result does not: add in bigint, the assignment range-checks it.
			types[i] = "pg_catalog.int8"
		}
	}
	per := max(1, min(w.batch, w.d.maxParams/len(names)))
	if g.Op == Insert {
		return nil, w.insert(ctx, g, types, per)
	}
	arrays := !w.d.valuesOnly
	for _, id := range names {
		c := t.cols[id.Norm]
		// unnest would flatten an array of arrays and expand composites.
		arrays = arrays && c.kind != 'c' && c.category != 'A' && c.array != 0
	}
	return w.update(ctx, g, types, per, arrays)
}

// insert runs the group's INSERTs, per rows a statement.
func (w *pgvTx) insert(ctx context.Context, g *Group, types []string, per int) error {
	var full pgvStmt
	defer full.close()
	for off := 0; off < len(g.Rows); off += per {
		rows := g.Rows[off:min(off+per, len(g.Rows))]
		sql := func() string { return pgvInsertSQL(g, types, len(rows)) }
		if _, err := full.exec(ctx, w.conn, len(rows) == per && len(g.Rows) >= 2*per, sql, w.gather(rows, 0, len(types))); err != nil {
			return err
		}
	}
	return nil
}

// pgvStmt runs a group's full-size statements: prepared on the first when
// the group has several (parsing a statement of thousands of parameters
// costs more than a round trip), each run by itself otherwise.
type pgvStmt struct{ st driver.Stmt }

// exec runs the statement sql() returns; reuse says it is the full-size one
// and prepares it once.
func (p *pgvStmt) exec(ctx context.Context, conn driver.Conn, reuse bool, sql func() string, args []driver.NamedValue) (driver.Result, error) {
	if !reuse {
		return pgvExec(ctx, conn, sql(), args)
	}
	if p.st == nil {
		st, err := drivercall.Prepare(ctx, conn, sql())
		if err != nil {
			return nil, err
		}
		p.st = st
	}
	return drivercall.StmtExec(ctx, p.st, args)
}

func (p *pgvStmt) close() {
	if p.st != nil {
		_ = p.st.Close()
	}
}

// update runs the group's UPDATEs, per rows a statement, and finds the rows
// that matched nothing.
func (w *pgvTx) update(ctx context.Context, g *Group, types []string, per int, arrays bool) ([]int, error) {
	// If a SET column is also a key column, the keys can only be checked
	// before the UPDATE moves them.
	checkFirst := false
	for _, c := range g.Cols {
		for _, k := range g.KeyCols {
			checkFirst = checkFirst || c.Norm == k.Norm
		}
	}
	keyTypes := types[len(g.Cols):]
	var full pgvStmt
	defer full.close()
	var noMatch []int
	for off := 0; off < len(g.Rows); off += per {
		rows := g.Rows[off:min(off+per, len(g.Rows))]
		if checkFirst {
			var err error
			if noMatch, err = w.missing(ctx, g, keyTypes, rows, off, noMatch, arrays); err != nil {
				return nil, err
			}
		}
		sql := func() string { return pgvUpdateSQL(g, types, len(rows), arrays) }
		res, err := full.exec(ctx, w.conn, len(rows) == per && len(g.Rows) >= 2*per, sql, w.gather(rows, 0, len(types)))
		if err != nil {
			return nil, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, err
		}
		// Every key exists (the common case) when the UPDATE touched every
		// row: only a short count costs a query to say which keys missed.
		if !checkFirst && n < int64(len(rows)) {
			if noMatch, err = w.missing(ctx, g, keyTypes, rows, off, noMatch, arrays); err != nil {
				return nil, err
			}
		}
	}
	return noMatch, nil
}

// missing appends to noMatch the group indices (off + position in rows)
// of the keys of rows that match no row.
func (w *pgvTx) missing(ctx context.Context, g *Group, keyTypes []string, rows [][]any, off int, noMatch []int, arrays bool) ([]int, error) {
	got, err := pgvQuery(ctx, w.conn, pgvMissingSQL(g, keyTypes, len(rows), arrays), 1, w.gatherAny(rows, len(g.Cols), len(keyTypes))...)
	if err != nil {
		return nil, err
	}
	for _, r := range got {
		n, err := pgvInt(r[0])
		if err != nil || n < 1 || int(n) > len(rows) {
			return nil, fmt.Errorf("missing keys: unexpected row number %v", r[0])
		}
		noMatch = append(noMatch, off+int(n)-1)
	}
	return noMatch, nil
}

// gather turns columns from..from+n of rows into the statement's arguments,
// row after row.
func (w *pgvTx) gather(rows [][]any, from, n int) []driver.NamedValue {
	w.args = w.args[:0]
	for _, r := range rows {
		for _, v := range r[from : from+n] {
			w.args = append(w.args, driver.NamedValue{Ordinal: len(w.args) + 1, Value: v})
		}
	}
	return w.args
}

// gatherAny is gather as plain values.
func (w *pgvTx) gatherAny(rows [][]any, from, n int) []any {
	out := make([]any, 0, len(rows)*n)
	for _, r := range rows {
		out = append(out, r[from:from+n]...)
	}
	return out
}

// pgvValues writes `($p::T0, $p+1::T1, ...), (...)` for n rows of types,
// numbering parameters from 1; extra, when not nil, writes a last item of
// row i (after a comma).
func pgvValues(sb *strings.Builder, types []string, n int, extra func(sb *strings.Builder, i int)) {
	p := 1
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteByte('(')
		for j, typ := range types {
			if j > 0 {
				sb.WriteString(", ")
			}
			sb.WriteByte('$')
			sb.WriteString(strconv.Itoa(p))
			sb.WriteString("::")
			sb.WriteString(typ)
			p++
		}
		if extra != nil {
			sb.WriteString(", ")
			extra(sb, i)
		}
		sb.WriteByte(')')
	}
}

// pgvSource writes the n rows of a statement, placeholders $1... row after
// row, each cast to its column's type in types: a VALUES list, or with
// arrays one array a column, unnested. An unnest of a sub-select's array is
// estimated at a few rows, so PostgreSQL joins it to the table by the key's
// index, as the pgx writer's statements are joined; it estimates a VALUES
// list exactly, and for a long one hashes the whole table. ordinal adds a
// last column numbering the rows from 1.
func pgvSource(sb *strings.Builder, types []string, n int, arrays, ordinal bool) {
	if !arrays {
		sb.WriteString("(VALUES ")
		var extra func(sb *strings.Builder, i int)
		if ordinal {
			extra = func(sb *strings.Builder, i int) { sb.WriteString(strconv.Itoa(i + 1)) }
		}
		pgvValues(sb, types, n, extra)
		sb.WriteByte(')')
		return
	}
	sb.WriteString("unnest(")
	for j, typ := range types {
		if j > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(SELECT ARRAY[")
		for i := 0; i < n; i++ {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteByte('$')
			sb.WriteString(strconv.Itoa(i*len(types) + j + 1))
			sb.WriteString("::")
			sb.WriteString(typ)
		}
		sb.WriteString("])")
	}
	sb.WriteByte(')')
	if ordinal {
		sb.WriteString(" WITH ORDINALITY")
	}
}

// pgvUpdateSQL is the UPDATE of n rows of g: types are the casts of g.Cols
// then g.KeyCols. The rows' columns are named c0.. and k0.., so no
// application name can clash with them, and table columns are qualified by
// the alias t.
func pgvUpdateSQL(g *Group, types []string, n int, arrays bool) string {
	var sb strings.Builder
	pgUpdateSet(&sb, g, func(sb *strings.Builder, i int) {
		sb.WriteString("v.c")
		sb.WriteString(strconv.Itoa(i))
	})
	sb.WriteString(" FROM ")
	pgvSource(&sb, types, n, arrays, false)
	pgUpdateMatch(&sb, g, make([]pgColSQL, len(g.KeyCols)))
	return sb.String()
}

// pgvMissingSQL lists, 1-based, which of n keys (of keyTypes, as $1...)
// match no row of g's table.
func pgvMissingSQL(g *Group, keyTypes []string, n int, arrays bool) string {
	var sb strings.Builder
	sb.WriteString("SELECT v.n FROM ")
	pgvSource(&sb, keyTypes, n, arrays, true)
	sb.WriteString(" AS v(")
	pgAliases(&sb, "k", len(keyTypes))
	sb.WriteString(", n) WHERE NOT EXISTS (SELECT 1 FROM ")
	sb.WriteString(pgTableName(g))
	sb.WriteString(" AS t WHERE ")
	pgKeyMatch(&sb, g, make([]pgColSQL, len(g.KeyCols)))
	sb.WriteString(") ORDER BY v.n")
	return sb.String()
}

// pgvInsertSQL is the INSERT of n rows of g, types the casts of g.Cols.
func pgvInsertSQL(g *Group, types []string, n int) string {
	var sb strings.Builder
	writeInsertInto(&sb, pgTableName(g), g.Cols)
	sb.WriteString(" VALUES ")
	pgvValues(&sb, types, n, nil)
	return sb.String()
}

// pgvArgs turns a checkpoint statement's arguments into driver values: the
// slices it passes for text[] and int8[] parameters become array literals,
// which every driver can send as text.
func pgvArgs(args []any) []driver.NamedValue {
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		switch x := a.(type) {
		case []string:
			a = TextArrayLiteral(x)
		case []int64:
			parts := make([]string, len(x))
			for j, n := range x {
				parts[j] = strconv.FormatInt(n, 10)
			}
			a = "{" + strings.Join(parts, ",") + "}"
		}
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return named
}

// TextArrayLiteral formats strs as a PostgreSQL text[] literal: every
// element quoted, with backslash escapes for quotes and backslashes.
func TextArrayLiteral(strs []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, s := range strs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for j := 0; j < len(s); j++ {
			if s[j] == '"' || s[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(s[j])
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// pgvExec runs query with args on conn, directly when the driver can,
// through a prepared statement otherwise.
func pgvExec(ctx context.Context, conn driver.Conn, query string, args []driver.NamedValue) (driver.Result, error) {
	if e, ok := conn.(driver.ExecerContext); ok {
		res, err := e.ExecContext(ctx, query, args)
		if err != driver.ErrSkip {
			return res, err
		}
	}
	st, err := drivercall.Prepare(ctx, conn, query)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return drivercall.StmtExec(ctx, st, args)
}

// pgvQuery runs query on conn and returns its rows, each of width values.
func pgvQuery(ctx context.Context, conn driver.Conn, query string, width int, args ...any) ([][]driver.Value, error) {
	named := drivercall.ValuesToNamed(args)
	var rows driver.Rows
	var err error
	if q, ok := conn.(driver.QueryerContext); ok {
		rows, err = q.QueryContext(ctx, query, named)
	} else {
		err = driver.ErrSkip
	}
	if err == driver.ErrSkip {
		var st driver.Stmt
		if st, err = drivercall.Prepare(ctx, conn, query); err != nil {
			return nil, err
		}
		defer st.Close()
		rows, err = drivercall.StmtQuery(ctx, st, named)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return readRows(rows, width)
}

// readRows reads every row of rows, each of width values.
func readRows(rows driver.Rows, width int) ([][]driver.Value, error) {
	if n := len(rows.Columns()); n != width {
		return nil, fmt.Errorf("query returned %d columns, want %d", n, width)
	}
	var out [][]driver.Value
	for {
		r := make([]driver.Value, width)
		if err := rows.Next(r); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
}

// pgvQueryRow is pgvQuery of a query that returns exactly one row.
func pgvQueryRow(ctx context.Context, conn driver.Conn, query string, width int, args ...any) ([]driver.Value, error) {
	rows, err := pgvQuery(ctx, conn, query, width, args...)
	if err != nil {
		return nil, err
	}
	if len(rows) != 1 {
		return nil, fmt.Errorf("query returned %d rows, want 1", len(rows))
	}
	return rows[0], nil
}

// pgvString reads a text column as drivers return it: string or []byte.
func pgvString(v driver.Value) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// pgvInt reads an integer column: int64, or its text.
func pgvInt(v driver.Value) (int64, error) {
	if n, ok := v.(int64); ok {
		return n, nil
	}
	return strconv.ParseInt(pgvString(v), 10, 64)
}

// pgvBool reads a boolean column: bool, or its text (t/f).
func pgvBool(v driver.Value) (bool, error) {
	if b, ok := v.(bool); ok {
		return b, nil
	}
	switch pgvString(v) {
	case "t", "true":
		return true, nil
	case "f", "false":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean: %v", v)
}
