package writeback

import (
	"bytes"
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"

	"github.com/writeback-go/writeback/internal/catalog"
	"github.com/writeback-go/writeback/internal/dialect"
	"github.com/writeback-go/writeback/internal/sqlparse"
)

// This file answers a read of one row by its key — the page-view request's
// SELECT views FROM counters WHERE id = $1 — from the database plus the
// buffer, instead of waiting at the table's barrier for a flush. The read
// goes to the database with each selected column that has a buffered delta
// for that key written as (col + delta): the database computes the value
// as the flush would make it, with the column's own type. It is exact only
// while no flush of the table is under way from before the buffered deltas
// are read until after the database answered (a flush could commit the row
// the read would then count twice); otherwise, and for anything the
// expression cannot say (an assignment, a pending INSERT, a row in a flush),
// the read waits at the barrier as any other.

// readPlan is how one read by key of a back table is answered.
type readPlan struct {
	t       *tableState
	kr      *sqlparse.KeyRead
	keyPos  []int             // index in kr.Where of each key column, in the rule's order
	keyCols []*catalog.Column // the key's catalog columns
	cols    []readCol         // the select list, * expanded
	// inline: deltas are written into the text as integer literals (SQLite);
	// otherwise as $N parameters after the read's own (PostgreSQL).
	inline bool
}

// readCol is one column of a read's select list.
type readCol struct {
	col  *catalog.Column
	norm string // the name dirty rows use for it
	raw  string // as the read wrote it, or quoted from the catalog for *
	as   string // the name the database gives the column
}

// planRead returns how the read query is answered from the database plus
// the buffer, or nil when it waits at the barrier.
func (cn *Connector) planRead(query string, info *stmtInfo, sch *schemaState) *readPlan {
	kind := cn.dia.Kind()
	if sch == nil || len(info.barrier) != 1 || kind != dialect.Postgres && kind != dialect.SQLite {
		return nil
	}
	kr := sqlparse.ClassifyKeyRead(query, kind == dialect.SQLite)
	if kr == nil {
		return nil
	}
	switch {
	case kind == dialect.Postgres && kr.Style != sqlparse.ParamDollar && kr.Style != sqlparse.ParamNone,
		kind == dialect.SQLite && kr.Style != sqlparse.ParamQuestion && kr.Style != sqlparse.ParamNone:
		return nil
	}
	t := cn.buf.tableFor(kr.Schema, kr.Table)
	if t == nil || t != info.barrier[0] || sch.broken[t.rule.Name] != nil || len(kr.Where) != len(t.rule.Key) {
		return nil
	}
	tab := sch.tables[t.rule.Name]
	if tab == nil {
		return nil
	}
	p := &readPlan{t: t, kr: kr, inline: kind == dialect.SQLite}
	for _, k := range t.rule.Key {
		pos := -1
		for j, w := range kr.Where {
			if w.Col.Norm == k {
				pos = j
			}
		}
		col := tab.Column(k)
		if pos < 0 || col == nil {
			return nil
		}
		p.keyPos = append(p.keyPos, pos)
		p.keyCols = append(p.keyCols, col)
	}
	if kr.SelectAll {
		for _, col := range tab.Columns {
			q := `"` + strings.ReplaceAll(col.Name, `"`, `""`) + `"`
			p.cols = append(p.cols, readCol{col: col, norm: col.Name, raw: q, as: q})
		}
		return p
	}
	for _, s := range kr.Select {
		col := tab.Column(s.Col.Norm)
		if col == nil {
			return nil
		}
		p.cols = append(p.cols, readCol{col: col, norm: s.Col.Norm, raw: s.Raw, as: s.Col.Raw})
	}
	return p
}

// readByKey answers the read from the database plus the buffer. ok is false
// when it cannot: the read then goes through the barrier.
func (c *conn) readByKey(ctx context.Context, query string, p *readPlan, args []driver.NamedValue) (rows driver.Rows, ok bool, err error) {
	cn, t := c.cn, p.t
	if cn.recovery.Load() != nil || len(args) != p.kr.NumParams {
		return nil, false, nil
	}
	keys := make([]any, len(p.keyPos))
	for i, pos := range p.keyPos {
		v, ok := argValue(&p.kr.Where[pos].Val, args)
		if !ok || v == nil {
			return nil, false, nil
		}
		if keys[i], ok = catalog.KeyValue(cn.dia.Kind(), p.keyCols[i], v); !ok {
			return nil, false, nil
		}
	}
	epoch, quiet := t.set.Quiet()
	if !quiet {
		return nil, false, nil
	}
	cols, vals, delta, _, ok := t.set.PendingRow(keys)
	if !ok {
		return nil, false, nil
	}
	// The selected columns' deltas, in select-list order.
	exprs := make([]string, len(p.cols))
	changed := false
	for i, rc := range p.cols {
		for j, col := range cols {
			if !p.sameColumn(col.Norm, rc.norm) {
				continue
			}
			lit, ok := p.deltaText(rc.col, vals[j], delta[j])
			if !ok || exprs[i] != "" {
				return nil, false, nil // an assignment; one column under two spellings
			}
			exprs[i], changed = lit, true
		}
	}
	base, err := c.attach(ctx)
	if err != nil {
		return nil, false, nil // the barrier's path reports it
	}
	qc, isQ := base.(driver.QueryerContext)
	if !isQ {
		return nil, false, nil
	}
	q := query
	if changed {
		var extra []driver.NamedValue
		q, extra = p.rewrite(query, exprs)
		if len(extra) > 0 {
			args = append(args[:len(args):len(args)], extra...)
		}
	}
	rows, err = qc.QueryContext(ctx, q, args)
	if err != nil {
		if changed {
			return nil, false, nil // the rewritten read failed: the read itself says why, after the barrier
		}
		return nil, true, err
	}
	if !changed {
		t.readsByKey.Add(1)
		return rows, true, nil
	}
	// The row is read to the end before the check: a driver may run the
	// statement only when its rows are read (go-sqlite3 does).
	br, err := readAll(rows)
	if err != nil || !t.set.StillQuiet(epoch) {
		// A flush began: the row may be committed already, and counted twice.
		rows.Close()
		return nil, false, nil
	}
	t.readsByKey.Add(1)
	return br, true, nil
}

// maxReadRows bounds the rows a read by key holds in memory: a key matches
// one row; more means the key is not what the rule says, and the read goes
// through the barrier.
const maxReadRows = 16

// readAll reads rows to the end into memory; the base rows stay open for
// their column metadata until Close.
func readAll(rows driver.Rows) (*bufferedRows, error) {
	br := &bufferedRows{Rows: rows}
	n := len(rows.Columns())
	for {
		dest := make([]driver.Value, n)
		err := rows.Next(dest)
		if errors.Is(err, io.EOF) {
			return br, nil
		}
		if err != nil {
			return nil, err
		}
		if len(br.rows) == maxReadRows {
			return nil, errors.New("writeback: a read by key matched too many rows")
		}
		for i, v := range dest {
			if b, ok := v.([]byte); ok {
				dest[i] = bytes.Clone(b) // the driver may reuse its buffer
			}
		}
		br.rows = append(br.rows, dest)
	}
}

// bufferedRows are a read's rows held in memory, with the base rows'
// column metadata.
type bufferedRows struct {
	driver.Rows
	rows [][]driver.Value
	next int
}

var (
	_ driver.RowsColumnTypeScanType         = (*bufferedRows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*bufferedRows)(nil)
	_ driver.RowsColumnTypeLength           = (*bufferedRows)(nil)
	_ driver.RowsColumnTypeNullable         = (*bufferedRows)(nil)
	_ driver.RowsColumnTypePrecisionScale   = (*bufferedRows)(nil)
)

func (r *bufferedRows) Next(dest []driver.Value) error {
	if r.next >= len(r.rows) {
		return io.EOF
	}
	copy(dest, r.rows[r.next])
	r.next++
	return nil
}

// The column metadata comes from the base rows, with database/sql's
// defaults where the base has none.

func (r *bufferedRows) ColumnTypeScanType(i int) reflect.Type {
	if b, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return b.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}

func (r *bufferedRows) ColumnTypeDatabaseTypeName(i int) string {
	if b, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return b.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *bufferedRows) ColumnTypeLength(i int) (int64, bool) {
	if b, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return b.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *bufferedRows) ColumnTypeNullable(i int) (bool, bool) {
	if b, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return b.ColumnTypeNullable(i)
	}
	return false, false
}

func (r *bufferedRows) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	if b, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return b.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}

// sameColumn reports whether two normalized names are one column: SQLite
// ignores ASCII case in names, even quoted ones.
func (p *readPlan) sameColumn(a, b string) bool {
	if p.inline {
		return strings.EqualFold(a, b)
	}
	return a == b
}

// deltaText is the SQL operand of a buffered delta for col: its value as a
// literal (SQLite) or a parameter marker ("" with the value in the
// returned text's place, see rewrite). ok is false for what a read cannot
// add: an assignment, a value the expression would not add exactly.
func (p *readPlan) deltaText(col *catalog.Column, v any, isDelta bool) (string, bool) {
	if !isDelta {
		return "", false
	}
	switch d := v.(type) {
	case int64:
		if col.Class != catalog.Integer && !(col.Class == catalog.Numeric && !p.inline) {
			return "", false
		}
		return strconv.FormatInt(d, 10), true
	case string:
		// An exact decimal delta on a PostgreSQL numeric column.
		if p.inline || col.Class != catalog.Numeric {
			return "", false
		}
		return d, true
	}
	return "", false
}

// rewrite writes the read with each changed column of the select list as
// (col + delta) under its own name. On PostgreSQL the deltas become
// parameters after the read's own, so the text stays the same for every
// value and prepared statements are reused.
func (p *readPlan) rewrite(query string, deltas []string) (string, []driver.NamedValue) {
	var sb strings.Builder
	var extra []driver.NamedValue
	sb.WriteString(query[:p.kr.ListStart])
	for i, rc := range p.cols {
		if i > 0 {
			sb.WriteString(", ")
		}
		if deltas[i] == "" {
			sb.WriteString(rc.raw)
			continue
		}
		sb.WriteString("(")
		sb.WriteString(rc.raw)
		sb.WriteString(" + ")
		if p.inline {
			sb.WriteString(deltas[i])
		} else {
			n := p.kr.NumParams + len(extra) + 1
			sb.WriteString("$" + strconv.Itoa(n))
			var v any = deltas[i]
			if d, err := strconv.ParseInt(deltas[i], 10, 64); err == nil {
				v = d
			}
			extra = append(extra, driver.NamedValue{Ordinal: n, Value: v})
		}
		sb.WriteString(") AS ")
		sb.WriteString(rc.as)
	}
	sb.WriteString(query[p.kr.ListEnd:])
	return sb.String(), extra
}
